// Read-side Lua scripts of the admin service: pages of computers whose cost
// depends on the page size, never on the fleet size. Each script's source,
// opening with its KEYS/ARGV/reply contract, is admin/lua/<name>.lua.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/redis.hpp"

namespace primary::admin {

// lua/computers.lua: one page of computers, by name or by last seen.
const Script& computers_script();

// lua/computer.lua: one computer's row plus its queued commands, or nil.
const Script& computer_script();

// lua/stale_count.lua: one batch of the rolling count of stale never-seen
// computers, {n or -1, at, 1 while a pass is in progress}.
const Script& stale_count_script();

// One computer as describe() (lua/includes/describe.lua) makes it: {name,
// license, state, reserved_at, first_seen, last_seen, version, peer,
// clock_skew_s, stale ('1' or '')}, '' for what is not known. Views into
// the reply.
struct ComputerRow {
  std::string_view name, license, state;
  int64_t reserved_at = 0;
  std::optional<int64_t> first_seen, last_seen;
  std::string_view version, peer;  // '' when not known
  std::optional<int64_t> clock_skew_s;
  bool stale = false;  // never seen or lost for longer than the settings
};
std::optional<ComputerRow> computer_row(const RedisReply& row);

// computers_script()'s answer {rows, next cursor or ''}; rows not of the
// shape are left out.
struct ComputersPage {
  std::vector<ComputerRow> rows;
  std::string_view next;
};
std::optional<ComputersPage> computers_page(const RedisReply& r);

// computer_script()'s answer: the row plus the command queue's length;
// nullopt when it is not of that shape (nil: not reserved).
struct ComputerAnswer {
  ComputerRow row;
  int64_t commands_pending = 0;
};
std::optional<ComputerAnswer> computer_answer(const RedisReply& r);

}  // namespace primary::admin
