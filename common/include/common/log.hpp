// Process-wide logging setup (spdlog to stderr).
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace primary {

// Sets the default logger's name and level; returns false on an unknown level.
bool init_logging(const std::string& program, const std::string& level);

// Adds the --log-level setting to a Config.
class Config;
void add_log_setting(Config& cfg);

}  // namespace primary
