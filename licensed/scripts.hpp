// The Lua scripts that own every licensing write. Each runs atomically in
// Redis; see scripts.cpp for the essay on the reservation script.
#pragma once

#include "common/keys.hpp"
#include "common/redis.hpp"

namespace primary::licensing {

const Script& reserve_script();
const Script& heartbeat_script();
const Script& unlock_script();
const Script& registration_script();
const Script& command_script();
const Script& sweep_script();
const Script& clock_jump_script();
// KEYS: reservations   ARGV: name   Returns the license or nil.
const Script& license_of_script();

}  // namespace primary::licensing
