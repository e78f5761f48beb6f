// The Lua scripts that own every licensing write. Each runs atomically in
// Redis; see scripts.cpp for the essay on the reservation script.
#pragma once

#include "common/redis.hpp"

namespace primary::licensing {

// Redis keys (all under the "ps:" prefix).
inline constexpr const char* kSerial = "ps:serial";        // hash: serial, registration, unlocked, purchased, issued, code
inline constexpr const char* kInstallId = "ps:install_id";  // string, made once
inline constexpr const char* kReservations = "ps:res";      // zset (scores 0): "NAME:LICENSE"
inline constexpr const char* kMeta = "ps:meta";             // hash: NAME -> msgpack {r, f, v, p}
inline constexpr const char* kActive = "ps:active";         // zset: NAME -> last seen (ms)
inline constexpr const char* kLost = "ps:lost";             // zset: NAME -> last seen (ms)
inline constexpr const char* kStats = "ps:stats";           // hash of counters
inline constexpr const char* kSweepLock = "ps:sweep:lock";  // string with expiry
inline const std::string command_key(const std::string& name) { return "ps:cmd:" + name; }
inline const std::string reject_key(const std::string& name) { return "ps:rej:" + name; }

const Script& reserve_script();
const Script& heartbeat_script();
const Script& unlock_script();
const Script& registration_script();
const Script& command_script();
const Script& sweep_script();
// KEYS: reservations   ARGV: name   Returns the license or nil.
const Script& license_of_script();

}  // namespace primary::licensing
