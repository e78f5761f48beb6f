#include "admin/scripts.hpp"

#include <string>

#include "admin/lua_scripts.hpp"

namespace primary::admin {

const Script& computers_script() {
  static const Script s{std::string(lua::kComputers)};
  return s;
}

const Script& computer_script() {
  static const Script s{std::string(lua::kComputer)};
  return s;
}

}  // namespace primary::admin
