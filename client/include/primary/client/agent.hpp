// The Client's licensing state machine (DESIGN.md, "Client licensing").
//
//            licensed reply                      no answer
//   unlicensed ─────────────> licensed ───────────────────────> lost
//    every 60 s   <───────── every 4 h   <───────────────────  every 1 h
//        ^      unlicensed reply           licensed reply        │
//        └───────────────────────────────────────────────────────┘
//                            unlicensed reply
//
// - unlicensed: not verified (yet, or any more). Contacts every 60 s.
//   Nothing is recorded: recording starts once the server has verified the
//   computer name and license. A server that answers "unlicensed" after
//   having verified this computer (LICENSE_MISMATCH after a reinstall, say)
//   has withdrawn the verification, so recording stops too: can_record() is
//   true only in `licensed` and `lost`.
// - licensed: the last answer verified us. Next contact after the server's
//   `next_check_s` (4 h by default). Uploads are allowed while the lease
//   that came with that answer is valid.
// - lost: verified before, but the server did not answer (timeouts on every
//   endpoint, or an error reply such as UNAVAILABLE/BUSY). Recording goes
//   on; uploads go on until the lease expires (4 h + grace after it was
//   issued); contacts every hour.
//
// Whenever the server gives `next_check_s` (or `retry_after_s` with BUSY),
// its value wins over these defaults. Every interval gets a random jitter
// (default +-10%) so a fleet started together does not stay in step.
// Intervals count from the start of a contact.
//
// A contact is one heartbeat request, retried the way the zguide's Lazy
// Pirate retries: no reply within the timeout, and the connection is dropped
// and a fresh one opened to the next endpoint of the list (client-side
// failover). The endpoint that answered is tried first next time. An
// endpoint whose connection never reached a server (refused, unreachable, no
// handshake within the timeout) is not tried again in the same contact.
//
// At rest: between two contacts the agent holds no connection and does
// nothing; run() sleeps until the next contact is due (or wake(), or a stop
// request) and is not woken otherwise. A connection is opened only for a
// contact and closed at its end, and each one makes a single connection
// attempt (no background reconnects), so while the server is down a contact
// costs one connection attempt per endpoint of the list: one an hour when
// lost, with the single default endpoint.
//
// Time: the server's clock decides, the Client's wall clock decides
// nothing. Every reply that verifies the Client carries `server_time`
// (Unix seconds); the agent pins it, plus half the request's round trip, to
// its steady clock, and from then on reads the server's time as that
// reference plus the steady clock's progress. Lease validity (at
// verification and in can_upload()) is judged in that time, and contacts
// are scheduled on the steady clock alone, so a Client whose wall clock is
// hours off (or jumps) uploads exactly while its lease is valid in server
// time. Only before any such reply, or against a server that sends no
// `server_time`, does the agent fall back to its wall clock. Each heartbeat
// carries the wall clock as `client_time`, so the server can report skew.
//
// Each lease is verified offline with the setup info's lease_key, and must
// name this computer and license; one that fails is treated as no lease
// (still licensed, but can_upload() is false). Without a lease_key the
// lease is taken on trust until the `lease_expires` the server gave.
//
// Management commands in a heartbeat reply go to the command callback; the
// results go back in the next heartbeat (`results: [{id, ok, detail?}]`),
// and are kept and re-sent until a heartbeat carrying them is answered
// `licensed` (the server ignores results in an unlicensed heartbeat). A
// timed-out heartbeat may still have reached the server, so a result can
// arrive there twice; never zero times while the agent runs.
//
// Threads: step()/run() drive the agent from one thread; the accessors,
// report() and wake() may be called from any thread; callbacks run on the
// driving thread (on_wake: on wake()'s caller) without any agent lock held.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "primary/client/lease.hpp"
#include "primary/client/setup.hpp"
#include "primary/client/transport.hpp"

namespace primary::client {

enum class LicenseState { unlicensed, licensed, lost };
std::string_view to_string(LicenseState s);

struct StateChange {
  std::chrono::system_clock::time_point at;
  std::string computer;
  LicenseState from, to;
  std::string reason;  // e.g. "verified", "NOT_RESERVED", "no reply from tcp://..."
  bool upload = false;     // can_upload() after the change
  std::string no_upload;   // when !upload, why (LicenseAgent::upload_off())
};

// A management command from the server, as queued by `license.control command`.
struct Command {
  std::string id;
  std::string command;
  std::string args_json;  // the command's args as JSON text; "null" when none
  int64_t queued_ms = 0;  // Unix ms
};

struct CommandResult {
  bool ok = true;
  std::string detail;  // optional; at most 1024 bytes travel (longer is cut)
};

struct AgentOptions {
  std::string computer;
  std::string license;
  std::vector<std::string> endpoints;  // failover order; at least one
  std::string lease_key;   // base64url (a set: commas between keys) or raw 32 bytes; empty: leases taken on trust
  std::string server_key;  // Z85, for the default (ZeroMQ) transport; empty: insecure
  std::string version;     // reported in heartbeats when set

  std::chrono::seconds unlicensed_interval{60};
  std::chrono::seconds licensed_interval{14400};
  std::chrono::seconds lost_interval{3600};
  double jitter = 0.10;     // each interval times a uniform factor in [1-j, 1+j]
  double time_scale = 1.0;  // multiplies every interval, the server's included (demos)
  std::chrono::steady_clock::duration first_contact_delay{0};

  std::chrono::milliseconds timeout{6000};  // per attempt; above the broker's 5 s deadline
  int attempts = 0;                         // per contact; 0: max(3, 2 per endpoint)
  uint64_t seed = 0;                        // jitter; 0: random

  // Called on every state change.
  std::function<void(const StateChange&)> on_state_change;
  // Called for each command; returning nullopt means "later": the result is
  // then given through LicenseAgent::report(). Without a callback every
  // command is answered {ok: false, detail: "no command handler"}.
  std::function<std::optional<CommandResult>(const Command&)> on_command;
  // Called by wake(), on its caller's thread, for an application that drives
  // step() from a loop of its own: wake that loop (its eventfd, its condition
  // variable) so that it reads next_wakeup() again.
  std::function<void()> on_wake;
};

// The options a setup file gives (computer, license, endpoints, keys).
AgentOptions options_from(const SetupInfo& setup);

class LicenseAgent {
 public:
  // `transport` defaults to zmq_transport({options.server_key}), `clock` to
  // system_clock(). The first contact is due at once (plus
  // first_contact_delay).
  explicit LicenseAgent(AgentOptions options, std::shared_ptr<Transport> transport = nullptr,
                        std::shared_ptr<Clock> clock = nullptr);
  ~LicenseAgent();
  LicenseAgent(const LicenseAgent&) = delete;
  LicenseAgent& operator=(const LicenseAgent&) = delete;

  // Makes at most one contact, if one is due at clock->now(); true if it did.
  bool step();
  // When the next contact is due (clock->now() time base).
  std::chrono::steady_clock::time_point next_wakeup() const;
  // Steps until a stop is requested, sleeping in real time in between: the
  // thread wakes only when a contact is due, on wake(), or on the stop
  // request, which makes run() return at once.
  void run(std::stop_token stop);
  // The same until `stop` is true. run() sees the flag when it wakes: set
  // it, then call wake() to have run() return at once (without a contact).
  void run(const std::atomic<bool>& stop);
  // Makes a contact due now (next_wakeup() becomes clock->now()), wakes
  // run() to make it (or to return, if its stop flag is set) and calls
  // on_wake. E.g. after report(), for a result that should not wait for the
  // next scheduled contact.
  void wake();

  LicenseState state() const;
  // Recording is allowed: licensed, or lost after having been licensed.
  bool can_record() const;
  // Uploads are allowed: licensed or lost, with a lease valid in server time
  // that the server said may be used for uploads.
  bool can_upload() const;
  // Why uploads are not allowed ("unlicensed", "no valid lease", "lease
  // expired", "server said no upload"); empty when can_upload().
  std::string upload_off() const;
  // The server's clock now (Unix seconds) as the last verifying reply gave
  // it, advanced by the steady clock; nullopt before any such reply.
  std::optional<int64_t> server_time() const;
  // The lease in hand (verified, or on trust without a lease_key), if any;
  // it may have expired since.
  std::optional<LeaseInfo> lease() const;
  // Why the agent is in its state (last contact's outcome).
  std::string reason() const;
  // The endpoint tried first at the next contact.
  std::string endpoint() const;
  const std::string& computer() const { return options_.computer; }

  // The result of a command the callback deferred; sent with the next heartbeat.
  void report(const std::string& id, CommandResult result);

 private:
  struct Outcome;
  Outcome contact(const std::string& body);
  void finish(const Outcome& outcome, std::chrono::steady_clock::time_point started);
  std::chrono::steady_clock::duration interval(std::chrono::seconds base);
  // Sleeps until the next contact is due, wake(), `stop` or `*flag`.
  void sleep_until_due(const std::stop_token& stop, const std::atomic<bool>* flag);
  // server_time(), or the wall clock without a reference. Needs mu_.
  int64_t server_now_s() const;
  // upload_off(). Needs mu_.
  std::string upload_off_locked() const;

  AgentOptions options_;
  std::shared_ptr<Transport> transport_;
  std::shared_ptr<Clock> clock_;
  std::mt19937_64 rng_;

  mutable std::mutex mu_;  // guards everything below
  LicenseState state_ = LicenseState::unlicensed;
  std::string reason_ = "not contacted yet";
  std::optional<LeaseInfo> lease_;
  // The key set of the server's last reply that carried one (lease_keys),
  // each key after a comma; verified with options_.lease_key.
  std::string learned_keys_;
  bool upload_ = false;
  // The server's clock (Unix time) at a point of the steady clock.
  struct ServerRef {
    std::chrono::steady_clock::time_point steady;
    std::chrono::milliseconds server;
  };
  std::optional<ServerRef> server_ref_;
  std::chrono::steady_clock::time_point next_;
  size_t current_ = 0;  // endpoint tried first
  struct PendingResult {
    std::string id;
    CommandResult result;
  };
  std::vector<PendingResult> results_;

  std::mutex wake_mu_;  // guards woken_
  std::condition_variable_any wake_cv_;
  bool woken_ = false;  // wake() since run() last slept
};

}  // namespace primary::client
