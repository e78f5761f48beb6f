// The Lua scripts that own every licensing write. Each runs atomically in
// Redis; its source, opening with its KEYS/ARGV/reply contract, is
// licensed/lua/<name>.lua (reserve.lua holds the essay on reservations).
#pragma once

#include "common/keys.hpp"
#include "common/redis.hpp"

namespace primary::licensing {

const Script& reserve_script();       // lua/reserve.lua
const Script& heartbeat_script();     // lua/heartbeat.lua
const Script& unlock_script();        // lua/unlock.lua
const Script& registration_script();  // lua/registration.lua
const Script& command_script();       // lua/command.lua
const Script& sweep_script();         // lua/sweep.lua
const Script& license_of_script();    // lua/license_of.lua

}  // namespace primary::licensing
