#include "common/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "common/config.hpp"

namespace primary {

bool init_logging(const std::string& program, const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  auto logger = spdlog::stderr_color_mt(program);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %n[%P] %^%l%$ %v");
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return true;
}

void add_log_setting(Config& cfg) {
  cfg.add_string("log-level", "info", "Log level: trace, debug, info, warn, error, critical, off");
}

}  // namespace primary
