// What each privileged op of the catalog writes to the activity log (issue
// 23): the event types a request to it may cause, every one of which must
// carry who made the request (actor, peer, via). An empty list: the op only
// reads. attribution_unit_test checks that every privileged op of the
// catalog has an entry; attribution_test checks the entries against a real
// server.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/names.hpp"

namespace primary::test {

inline const std::map<std::string, std::vector<std::string>>& attributed_events() {
  static const std::map<std::string, std::vector<std::string>> table = [] {
    auto key = [](const char* service, const char* op) { return std::string(service) + "/" + op; };
    return std::map<std::string, std::vector<std::string>>{
        {key(svc::kLicenseControl, opname::kReserve), {event::kLicenseReserved, event::kLicenseRefused}},
        {key(svc::kLicenseControl, opname::kSetupInfo), {event::kSetupInfoIssued}},
        {key(svc::kLicenseControl, opname::kRegistration), {event::kSerialRegistered}},
        {key(svc::kLicenseControl, opname::kUnlock), {event::kSerialUnlocked}},
        {key(svc::kLicenseControl, opname::kCommand), {event::kCommandQueued}},
        {key(svc::kLicenseControl, opname::kRetire), {event::kLicenseRetired, event::kSeatCodeRefused}},
        {key(svc::kLicenseControl, opname::kTransfer), {event::kLicenseTransferred, event::kSeatCodeRefused}},
        {key(svc::kUpdateControl, opname::kReleases), {}},
        {key(svc::kUpdateControl, opname::kApprove), {event::kUpdateApproved}},
        {key(svc::kUpdateControl, opname::kHold), {event::kUpdateHeld}},
        // The job's own events (update.synced, update.refused, ...) carry the
        // requester too; the test checks them by job id.
        {key(svc::kUpdateControl, opname::kSync), {event::kSyncRequested}},
        {key(svc::kUpdateControl, opname::kImport), {event::kImportRequested}},
        {key(svc::kAdmin, opname::kStatus), {}},
        {key(svc::kAdmin, opname::kComputers), {}},
        {key(svc::kAdmin, opname::kComputer), {}},
        {key(svc::kAdmin, opname::kLog), {}},
        {key(svc::kAdmin, opname::kFirewall), {}},
        {key(svc::kAdmin, opname::kMetrics), {}},
        {key(svc::kAdmin, opname::kHistory), {}},
        {key(svc::kAdmin, opname::kRecord), {event::kFirewallApplied, event::kWebPasswordSet}},
        {key(svc::kBrokerControl, opname::kWorkers), {}},
        {key(svc::kBrokerControl, opname::kStats), {}},
        {key(svc::kBrokerControl, opname::kWhoami), {}},
    };
  }();
  return table;
}

}  // namespace primary::test
