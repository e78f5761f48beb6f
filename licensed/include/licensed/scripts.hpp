// The Lua scripts that own every licensing write. Each runs atomically in
// Redis; its source, opening with its KEYS/ARGV/reply contract, is
// licensed/lua/<name>.lua (reserve.lua holds the essay on reservations).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/keys.hpp"
#include "common/redis.hpp"

namespace primary::licensing {

const Script& reserve_script();       // lua/reserve.lua
const Script& heartbeat_script();     // lua/heartbeat.lua
const Script& unlock_script();        // lua/unlock.lua
const Script& registration_script();  // lua/registration.lua
const Script& command_script();       // lua/command.lua
const Script& sweep_script();         // lua/sweep.lua
const Script& clock_jump_script();    // lua/clock_jump.lua
const Script& setup_info_script();    // lua/setup_info.lua
const Script& retire_script();        // lua/retire.lua
const Script& transfer_script();      // lua/transfer.lua
const Script& seat_refused_script();  // lua/seat_refused.lua

// One reservation's entry in reserve_script()'s answer, out[i] =
// {status, license, reserved, purchased}. Views into the reply.
struct ReserveAnswer {
  enum class Status { Created, Exists, NotUnlocked, NoLicensesLeft };
  Status status;
  std::string_view license;  // the reserved license; '' when refused
  int64_t reserved = 0;      // counts after this reservation
  int64_t purchased = 0;
};
// nullopt when `entry` is not of that shape or its status is unknown.
std::optional<ReserveAnswer> reserve_answer(const RedisReply& entry);

// One heartbeat's entry in heartbeat_script()'s answer, out[i] = 'OK',
// {'OK', command...} or the reason the computer is unlicensed. Views into
// the reply.
struct HeartbeatAnswer {
  bool licensed = false;
  std::string_view reason;                 // when not licensed
  std::vector<std::string_view> commands;  // delivered, each as queued (MessagePack)
};
// nullopt when `entry` is none of those.
std::optional<HeartbeatAnswer> heartbeat_answer(const RedisReply& entry);

// registration_script()'s answer: {'OK', serial, registration},
// {'LOCKED', the unlocked serial} or {'NONE'}. Views into the reply.
struct RegistrationAnswer {
  enum class Status { Registered, Locked, None };
  Status status;
  std::string_view serial;  // Registered: the registered one; Locked: the unlocked one
  std::string_view code;    // Registered: the registration code
  const RedisReply* events = nullptr;  // Registered: the entries it appended
};
std::optional<RegistrationAnswer> registration_answer(const RedisReply& r);

// unlock_script()'s answer: {'OK', purchased, events} or {'INVALID', reason}.
struct UnlockAnswer {
  bool ok = false;
  std::string_view reason;              // when refused
  const RedisReply* events = nullptr;   // when ok: the entries it appended
};
std::optional<UnlockAnswer> unlock_answer(const RedisReply& r);

// command_script()'s answer: {'OK', events}, {'NOT_FOUND'} or {'FULL'}.
struct CommandAnswer {
  enum class Status { Queued, NotFound, Full };
  Status status;
  const RedisReply* events = nullptr;  // when queued
};
std::optional<CommandAnswer> command_answer(const RedisReply& r);

// retire_script()'s and transfer_script()'s answer: {'OK', reserved,
// purchased, events} or {'REFUSED', reason, events}. Views into the reply.
struct SeatAnswer {
  bool ok = false;
  std::string_view reason;             // when refused
  int64_t reserved = 0, purchased = 0;  // when ok: the counts after it
  const RedisReply* events = nullptr;
};
std::optional<SeatAnswer> seat_answer(const RedisReply& r);

}  // namespace primary::licensing
