#include "licensed/scripts.hpp"

#include <cstdlib>
#include <string>

#include "licensed/lua_scripts.hpp"

namespace primary::licensing {

// Each script's KEYS, ARGV and reply are described at the top of its file,
// licensed/lua/<name>.lua.

const Script& reserve_script() { return embedded_script<lua::kReserve>(); }
const Script& heartbeat_script() { return embedded_script<lua::kHeartbeat>(); }
const Script& unlock_script() { return embedded_script<lua::kUnlock>(); }
const Script& registration_script() { return embedded_script<lua::kRegistration>(); }
const Script& command_script() { return embedded_script<lua::kCommand>(); }
const Script& sweep_script() { return embedded_script<lua::kSweep>(); }
const Script& clock_jump_script() { return embedded_script<lua::kClockJump>(); }
const Script& setup_info_script() { return embedded_script<lua::kSetupInfo>(); }
const Script& retire_script() { return embedded_script<lua::kRetire>(); }
const Script& transfer_script() { return embedded_script<lua::kTransfer>(); }
const Script& seat_refused_script() { return embedded_script<lua::kSeatRefused>(); }

namespace {

// A count as the script returns it: a Lua number arrives as an integer.
int64_t count_of(const RedisReply& r) {
  if (r.is_int()) return r.integer;
  if (r.is_str()) return std::atoll(r.str.c_str());
  return 0;
}

}  // namespace

std::optional<ReserveAnswer> reserve_answer(const RedisReply& entry) {
  if (!entry.is_array() || entry.elements.size() != 4 || !entry.elements[0].is_str()) return std::nullopt;
  ReserveAnswer a;
  const std::string& status = entry.elements[0].str;
  if (status == "CREATED") {
    a.status = ReserveAnswer::Status::Created;
  } else if (status == "EXISTS") {
    a.status = ReserveAnswer::Status::Exists;
  } else if (status == "NOT_UNLOCKED") {
    a.status = ReserveAnswer::Status::NotUnlocked;
  } else if (status == "NO_LICENSES_LEFT") {
    a.status = ReserveAnswer::Status::NoLicensesLeft;
  } else {
    return std::nullopt;
  }
  if (entry.elements[1].is_str()) a.license = entry.elements[1].str;
  a.reserved = count_of(entry.elements[2]);
  a.purchased = count_of(entry.elements[3]);
  return a;
}

std::optional<HeartbeatAnswer> heartbeat_answer(const RedisReply& entry) {
  const RedisReply* status = &entry;
  if (entry.is_array()) {
    if (entry.elements.empty()) return std::nullopt;
    status = &entry.elements[0];
  }
  if (!status->is_str()) return std::nullopt;
  HeartbeatAnswer a;
  if (status->str != "OK") {
    a.reason = status->str;
    return a;
  }
  a.licensed = true;
  if (entry.is_array()) {
    a.commands.reserve(entry.elements.size() - 1);
    for (size_t i = 1; i < entry.elements.size(); ++i) a.commands.emplace_back(entry.elements[i].str);
  }
  return a;
}

std::optional<RegistrationAnswer> registration_answer(const RedisReply& r) {
  if (!r.is_array() || r.elements.empty() || !r.elements[0].is_str()) return std::nullopt;
  const std::string& status = r.elements[0].str;
  if (status == "NONE") return RegistrationAnswer{RegistrationAnswer::Status::None, {}, {}};
  if (r.elements.size() < 2 || !r.elements[1].is_str()) return std::nullopt;
  if (status == "LOCKED") return RegistrationAnswer{RegistrationAnswer::Status::Locked, r.elements[1].str, {}};
  if (status != "OK" || r.elements.size() < 3 || !r.elements[2].is_str()) return std::nullopt;
  return RegistrationAnswer{RegistrationAnswer::Status::Registered, r.elements[1].str, r.elements[2].str,
                            r.elements.size() > 3 ? &r.elements[3] : nullptr};
}

std::optional<UnlockAnswer> unlock_answer(const RedisReply& r) {
  if (!r.is_array() || r.elements.size() < 2 || !r.elements[0].is_str()) return std::nullopt;
  UnlockAnswer a;
  if (r.elements[0].str != "OK") {
    a.reason = r.elements[1].is_str() ? std::string_view(r.elements[1].str) : std::string_view();
    return a;
  }
  a.ok = true;
  if (r.elements.size() > 2) a.events = &r.elements[2];
  return a;
}

std::optional<CommandAnswer> command_answer(const RedisReply& r) {
  if (!r.is_array() || r.elements.empty() || !r.elements[0].is_str()) return std::nullopt;
  const std::string& status = r.elements[0].str;
  if (status == "NOT_FOUND") return CommandAnswer{CommandAnswer::Status::NotFound};
  if (status == "FULL") return CommandAnswer{CommandAnswer::Status::Full};
  if (status != "OK") return std::nullopt;
  return CommandAnswer{CommandAnswer::Status::Queued, r.elements.size() > 1 ? &r.elements[1] : nullptr};
}

std::optional<SeatAnswer> seat_answer(const RedisReply& r) {
  if (!r.is_array() || r.elements.size() < 3 || !r.elements[0].is_str()) return std::nullopt;
  SeatAnswer a;
  if (r.elements[0].str == "REFUSED") {
    if (!r.elements[1].is_str()) return std::nullopt;
    a.reason = r.elements[1].str;
    a.events = &r.elements[2];
    return a;
  }
  if (r.elements[0].str != "OK" || r.elements.size() < 4) return std::nullopt;
  a.ok = true;
  a.reserved = count_of(r.elements[1]);
  a.purchased = count_of(r.elements[2]);
  a.events = &r.elements[3];
  return a;
}

}  // namespace primary::licensing
