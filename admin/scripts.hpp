// Read-side Lua scripts of the admin service: pages of computers whose cost
// depends on the page size, never on the fleet size. Each script's source,
// opening with its KEYS/ARGV/reply contract, is admin/lua/<name>.lua.
#pragma once

#include "common/redis.hpp"

namespace primary::admin {

// lua/computers.lua: one page of computers, by name or by last seen.
// KEYS: reservations, active, lost, meta
// ARGV: sort ('name'|'last-seen'), cursor ('' = start), limit, state filter
//       ('' = all), cutoff ms (active = last seen >= cutoff), scan budget
// Returns {items, next cursor or ''}; each item is
// {name, license, state, reserved_at, first_seen, last_seen, version, peer}
// with '' for unknown values.
const Script& computers_script();

// lua/computer.lua
// KEYS: reservations, active, lost, meta, commands list   ARGV: name, cutoff ms
// Returns one row as above plus the number of queued commands, or nil.
const Script& computer_script();

}  // namespace primary::admin
