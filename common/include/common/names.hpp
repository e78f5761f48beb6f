// Every wire name of the contract (docs/contract.md) and of docs/protocol.md,
// declared once: services, operations, fields and event types. Product code
// spells a wire name only through these constants; the catalog in
// schema.cpp binds each operation to its service, fields and reply. (Lua
// scripts are the exception: they get names through their ARGV contract.)
//
// The constants are character arrays, so they serve wherever a string
// literal did: a std::string key, a std::string_view, a Value.
#pragma once

#include <cstdint>

namespace primary {

// Every operation of every service. The catalog maps each to its service and
// wire name; handlers dispatch on this, never on the op string.
enum class Op : uint8_t {
  // license
  Heartbeat,
  // license.control
  Reserve,
  SetupInfo,
  Registration,
  Unlock,
  Command,
  Retire,
  Transfer,
  // update
  Check,
  Fetch,
  // update.control
  Releases,
  Approve,
  Hold,
  Sync,
  Import,
  // admin
  Status,
  Computers,
  Computer,
  Log,
  Firewall,
  Metrics,
  History,
  Record,
  // broker.control (answered by the broker itself)
  Workers,
  Stats,
  Whoami,
  // echo (diagnostic)
  Echo,
  Sleep,
};

namespace svc {
inline constexpr char kLicense[] = "license";
inline constexpr char kLicenseControl[] = "license.control";
inline constexpr char kUpdate[] = "update";
inline constexpr char kUpdateControl[] = "update.control";
inline constexpr char kAdmin[] = "admin";
inline constexpr char kBrokerControl[] = "broker.control";
inline constexpr char kEcho[] = "echo";
inline constexpr char kMmiService[] = "mmi.service";
}  // namespace svc

namespace opname {
inline constexpr char kHeartbeat[] = "heartbeat";
inline constexpr char kReserve[] = "reserve";
inline constexpr char kSetupInfo[] = "setup_info";
inline constexpr char kRegistration[] = "registration";
inline constexpr char kUnlock[] = "unlock";
inline constexpr char kCommand[] = "command";
inline constexpr char kRetire[] = "retire";
inline constexpr char kTransfer[] = "transfer";
inline constexpr char kCheck[] = "check";
inline constexpr char kFetch[] = "fetch";
inline constexpr char kReleases[] = "releases";
inline constexpr char kApprove[] = "approve";
inline constexpr char kHold[] = "hold";
inline constexpr char kSync[] = "sync";
inline constexpr char kImport[] = "import";
inline constexpr char kStatus[] = "status";
inline constexpr char kComputers[] = "computers";
inline constexpr char kComputer[] = "computer";
inline constexpr char kLog[] = "log";
inline constexpr char kFirewall[] = "firewall";
inline constexpr char kMetrics[] = "metrics";
inline constexpr char kHistory[] = "history";
inline constexpr char kRecord[] = "record";
inline constexpr char kWorkers[] = "workers";
inline constexpr char kStats[] = "stats";
inline constexpr char kWhoami[] = "whoami";
inline constexpr char kEcho[] = "echo";
inline constexpr char kSleep[] = "sleep";
}  // namespace opname

// Field names of requests, replies and events.
namespace field {
// every body
inline constexpr char kOp[] = "op";
inline constexpr char kRid[] = "rid";
inline constexpr char kOk[] = "ok";
inline constexpr char kCode[] = "code";
inline constexpr char kMessage[] = "message";
inline constexpr char kRetryAfterS[] = "retry_after_s";
// licensing
inline constexpr char kComputer[] = "computer";
inline constexpr char kLicense[] = "license";
inline constexpr char kVersion[] = "version";
inline constexpr char kResults[] = "results";
inline constexpr char kStatus[] = "status";
inline constexpr char kNextCheckS[] = "next_check_s";
inline constexpr char kUpload[] = "upload";
inline constexpr char kLease[] = "lease";
inline constexpr char kLeaseExpires[] = "lease_expires";
inline constexpr char kReason[] = "reason";
inline constexpr char kCommands[] = "commands";
inline constexpr char kServerTime[] = "server_time";
inline constexpr char kClientTime[] = "client_time";
inline constexpr char kSkewS[] = "skew_s";
inline constexpr char kWallDeltaS[] = "wall_delta_s";
inline constexpr char kSteadyDeltaS[] = "steady_delta_s";
inline constexpr char kCreated[] = "created";
inline constexpr char kReserved[] = "reserved";
inline constexpr char kPurchased[] = "purchased";
inline constexpr char kSerial[] = "serial";
inline constexpr char kEndpoints[] = "endpoints";
inline constexpr char kServerKey[] = "server_key";
inline constexpr char kLeaseKey[] = "lease_key";
// lease key rotation: the published key set, and the key id a lease names
inline constexpr char kLeaseKeys[] = "lease_keys";
inline constexpr char kKid[] = "kid";
inline constexpr char kRegistrationCode[] = "registration_code";
inline constexpr char kUnlockCode[] = "unlock_code";
inline constexpr char kCommand[] = "command";
inline constexpr char kArgs[] = "args";
inline constexpr char kId[] = "id";
// admin.record: what was done on the host, with which tool, by which Unix user
inline constexpr char kAction[] = "action";
inline constexpr char kTool[] = "tool";
inline constexpr char kUser[] = "user";
// admin_keys.reloaded: how many admin keys are in force, the names that came and went
inline constexpr char kKeys[] = "keys";
inline constexpr char kRemoved[] = "removed";
inline constexpr char kDetail[] = "detail";
// seat codes (retire, transfer): the request's `code`, the code's payload
inline constexpr char kKind[] = "kind";
inline constexpr char kRegistration[] = "registration";
inline constexpr char kCodeId[] = "code_id";
// updates
inline constexpr char kComponent[] = "component";
inline constexpr char kChannel[] = "channel";
inline constexpr char kUpdate[] = "update";
inline constexpr char kSize[] = "size";
inline constexpr char kSha256[] = "sha256";
inline constexpr char kSignature[] = "signature";
inline constexpr char kNotes[] = "notes";
inline constexpr char kOffset[] = "offset";
inline constexpr char kLength[] = "length";
inline constexpr char kData[] = "data";
inline constexpr char kRollout[] = "rollout";
inline constexpr char kState[] = "state";
inline constexpr char kJob[] = "job";
inline constexpr char kStarted[] = "started";
inline constexpr char kPath[] = "path";
inline constexpr char kFeed[] = "feed";
inline constexpr char kSync[] = "sync";
// releases: a release's record, the feed in force, the last sync job
inline constexpr char kIssued[] = "issued";
inline constexpr char kExpires[] = "expires";
inline constexpr char kStored[] = "stored";
inline constexpr char kAddedAt[] = "added_at";
inline constexpr char kSyncedAt[] = "synced_at";
inline constexpr char kSource[] = "source";
inline constexpr char kUrl[] = "url";
inline constexpr char kResult[] = "result";
inline constexpr char kAdded[] = "added";
inline constexpr char kFailed[] = "failed";
inline constexpr char kStartedAt[] = "started_at";
inline constexpr char kFinishedAt[] = "finished_at";
// admin
inline constexpr char kItems[] = "items";
inline constexpr char kCursor[] = "cursor";
inline constexpr char kLimit[] = "limit";
inline constexpr char kSort[] = "sort";
inline constexpr char kActive[] = "active";
inline constexpr char kLost[] = "lost";
inline constexpr char kNeverSeen[] = "never_seen";
inline constexpr char kClockSkewed[] = "clock_skewed";
inline constexpr char kClockSkewS[] = "clock_skew_s";
inline constexpr char kStale[] = "stale";  // a computer's flag (admin.computers); in admin.status, their count
inline constexpr char kUptimeS[] = "uptime_s";
inline constexpr char kServices[] = "services";
inline constexpr char kReservedAt[] = "reserved_at";
inline constexpr char kFirstSeen[] = "first_seen";
inline constexpr char kLastSeen[] = "last_seen";
inline constexpr char kPeer[] = "peer";
// who made a privileged request: the admin key's name (or fingerprint), or
// "local" in insecure mode (broker.control whoami); in event data also
// "web:ADDRESS" (the console acting for a browser) and "host:USER"
inline constexpr char kActor[] = "actor";
// event data: the key that carried a request made for someone else (the
// console's own key when actor is "web:ADDRESS")
inline constexpr char kVia[] = "via";
// request: whom the console acts for ("web:ADDRESS"); honoured only from the
// server's own (internal) key, ignored from anyone else
inline constexpr char kOnBehalf[] = "on_behalf";
inline constexpr char kRole[] = "role";
inline constexpr char kCommandsPending[] = "commands_pending";
inline constexpr char kSince[] = "since";
inline constexpr char kTypes[] = "types";
inline constexpr char kNext[] = "next";
inline constexpr char kPorts[] = "ports";
inline constexpr char kRules[] = "rules";
inline constexpr char kPort[] = "port";
inline constexpr char kProtocol[] = "protocol";
// the activity log's hash chain and checkpoints (docs/protocol.md "Activity log chain")
inline constexpr char kSeq[] = "seq";
inline constexpr char kPrev[] = "prev";
inline constexpr char kCount[] = "count";
inline constexpr char kHead[] = "head";
inline constexpr char kLogKey[] = "log_key";
inline constexpr char kChain[] = "chain";
inline constexpr char kWritten[] = "written";
inline constexpr char kOps[] = "ops";
inline constexpr char kCounters[] = "counters";
inline constexpr char kLicenses[] = "licenses";
inline constexpr char kEventsWritten[] = "events_written";
inline constexpr char kBroker[] = "broker";
inline constexpr char kTotals[] = "totals";
// admin.history: its request and reply, and what a point holds
inline constexpr char kFrom[] = "from";
inline constexpr char kTo[] = "to";
inline constexpr char kResolution[] = "resolution";
inline constexpr char kPoints[] = "points";
inline constexpr char kSampledAt[] = "sampled_at";
inline constexpr char kHeartbeats[] = "heartbeats";
inline constexpr char kFirstVerifications[] = "first_verifications";
inline constexpr char kRejections[] = "rejections";
inline constexpr char kWentLost[] = "went_lost";
inline constexpr char kReturned[] = "returned";
inline constexpr char kReservations[] = "reservations";
inline constexpr char kRefusals[] = "refusals";
inline constexpr char kUpdateChecks[] = "update_checks";
inline constexpr char kBytesServed[] = "bytes_served";
// events
inline constexpr char kTs[] = "ts";
inline constexpr char kType[] = "type";
// echo
inline constexpr char kPayload[] = "payload";
inline constexpr char kMs[] = "ms";
inline constexpr char kSleptMs[] = "slept_ms";
inline constexpr char kPid[] = "pid";
}  // namespace field

// Event types: the topic of each event-stream message and the `type` of each
// activity-log entry.
namespace event {
inline constexpr char kSerialUnlocked[] = "serial.unlocked";
inline constexpr char kLicenseReserved[] = "license.reserved";
inline constexpr char kLicenseRefused[] = "license.refused";
inline constexpr char kClientLicensed[] = "client.licensed";
inline constexpr char kClientRejected[] = "client.rejected";
inline constexpr char kClientLost[] = "client.lost";
inline constexpr char kClientReturned[] = "client.returned";
inline constexpr char kClientClockSkew[] = "client.clock_skew";
inline constexpr char kServerClockJump[] = "server.clock_jump";
inline constexpr char kUpdateSynced[] = "update.synced";
inline constexpr char kUpdateAvailable[] = "update.available";
inline constexpr char kUpdateApproved[] = "update.approved";
inline constexpr char kUpdateHeld[] = "update.held";
inline constexpr char kUpdateRefused[] = "update.refused";
inline constexpr char kUpdateDownloadFailed[] = "update.download_failed";
inline constexpr char kCommandQueued[] = "command.queued";
inline constexpr char kCommandDone[] = "command.done";
inline constexpr char kDataMigrated[] = "data.migrated";
inline constexpr char kLogCheckpoint[] = "log.checkpoint";
inline constexpr char kLicenseRetired[] = "license.retired";
inline constexpr char kLicenseTransferred[] = "license.transferred";
inline constexpr char kSeatCodeRefused[] = "seat_code.refused";
inline constexpr char kSerialRegistered[] = "serial.registered";
inline constexpr char kSetupInfoIssued[] = "setup_info.issued";
inline constexpr char kSyncRequested[] = "update.sync_requested";
inline constexpr char kImportRequested[] = "update.import_requested";
inline constexpr char kFirewallApplied[] = "firewall.applied";
inline constexpr char kWebPasswordSet[] = "web.password_set";
inline constexpr char kAdminKeysReloaded[] = "admin_keys.reloaded";
}  // namespace event

// Who, in `actor` (field::kActor): fixed names and prefixes.
namespace actor {
inline constexpr char kInternal[] = "internal";  // the server's own keys (supervisor, console)
inline constexpr char kLocal[] = "local";        // insecure mode: any loopback peer
inline constexpr char kWebPrefix[] = "web:";     // + the browser's address
inline constexpr char kHostPrefix[] = "host:";   // + the Unix user who acted on the host
}  // namespace actor

// Values of `resolution` in admin.history.
namespace resolution {
inline constexpr char kHour[] = "hour";
inline constexpr char kDay[] = "day";
}  // namespace resolution

// Values of `status` and `reason` in a heartbeat reply.
namespace status {
inline constexpr char kLicensed[] = "licensed";
inline constexpr char kUnlicensed[] = "unlicensed";
}  // namespace status

// Seat codes (docs/protocol.md "Seat codes"): their kinds, the unlicensed
// reason of a retired computer, and the reasons a code is refused (the
// `reason` of an INVALID_SEAT_CODE reply and of seat_code.refused).
namespace seat {
inline constexpr char kRetire[] = "retire";
inline constexpr char kTransfer[] = "transfer";
inline constexpr char kRetired[] = "RETIRED";
inline constexpr char kTampered[] = "TAMPERED";
inline constexpr char kWrongKind[] = "WRONG_KIND";
inline constexpr char kExpired[] = "EXPIRED";
inline constexpr char kOtherRegistration[] = "OTHER_REGISTRATION";
inline constexpr char kOtherLicense[] = "OTHER_LICENSE";
inline constexpr char kNotReserved[] = "NOT_RESERVED";
inline constexpr char kUsed[] = "USED";
inline constexpr char kNameTaken[] = "NAME_TAKEN";
}  // namespace seat

}  // namespace primary
