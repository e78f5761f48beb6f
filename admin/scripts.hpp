// Read-side Lua scripts of the admin service: pages of computers whose cost
// depends on the page size, never on the fleet size.
#pragma once

#include "common/redis.hpp"

namespace primary::admin {

// KEYS: reservations, active, lost, meta
// ARGV: sort ('name'|'last-seen'), cursor ('' = start), limit, state filter
//       ('' = all), cutoff ms (active = last seen >= cutoff), scan budget
// Returns {items, next cursor or ''}; each item is
// {name, license, state, reserved_at, first_seen, last_seen, version, peer}
// with '' for unknown values.
const Script& computers_script();

// KEYS: reservations, active, lost, meta, commands list   ARGV: name, cutoff ms
// Returns one row as above plus the number of queued commands, or nil.
const Script& computer_script();

}  // namespace primary::admin
