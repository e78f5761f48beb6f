#include "admin/scripts.hpp"

#include <string>

#include "admin/lua_scripts.hpp"

namespace primary::admin {

const Script& computers_script() { return embedded_script<lua::kComputers>(); }
const Script& computer_script() { return embedded_script<lua::kComputer>(); }

}  // namespace primary::admin
