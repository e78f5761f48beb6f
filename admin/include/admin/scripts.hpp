// Read-side Lua scripts of the admin service: pages of computers whose cost
// depends on the page size, never on the fleet size. Each script's source,
// opening with its KEYS/ARGV/reply contract, is admin/lua/<name>.lua.
#pragma once

#include "common/redis.hpp"

namespace primary::admin {

// lua/computers.lua: one page of computers, by name or by last seen; rows
// {name, license, state, reserved_at, first_seen, last_seen, version, peer}.
const Script& computers_script();

// lua/computer.lua: one computer's row plus its queued commands, or nil.
const Script& computer_script();

}  // namespace primary::admin
