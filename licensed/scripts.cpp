#include "licensed/scripts.hpp"

#include <string>

#include "licensed/lua_scripts.hpp"

namespace primary::licensing {

// Each script's KEYS, ARGV and reply are described at the top of its file,
// licensed/lua/<name>.lua.

const Script& reserve_script() {
  static const Script s{std::string(lua::kReserve)};
  return s;
}

const Script& heartbeat_script() {
  static const Script s{std::string(lua::kHeartbeat)};
  return s;
}

const Script& unlock_script() {
  static const Script s{std::string(lua::kUnlock)};
  return s;
}

const Script& registration_script() {
  static const Script s{std::string(lua::kRegistration)};
  return s;
}

const Script& command_script() {
  static const Script s{std::string(lua::kCommand)};
  return s;
}

const Script& sweep_script() {
  static const Script s{std::string(lua::kSweep)};
  return s;
}

const Script& license_of_script() {
  static const Script s{std::string(lua::kLicenseOf)};
  return s;
}

}  // namespace primary::licensing
