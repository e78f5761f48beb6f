// primary-server: runs Redis (unless external), the broker and the workers.
#include "common/log.hpp"
#include "server/supervisor.hpp"

int main(int argc, char** argv) {
  primary::Config cfg("primary-server",
                      "Runs the Primary Server: a private Redis, the broker and its workers");
  primary::add_supervisor_settings(cfg);
  cfg.parse(argc, argv);
  auto settings = primary::supervisor_settings(cfg);
  if (!primary::init_logging("primary-server", settings.log_level))
    cfg.fail("bad value for log-level: '" + settings.log_level + "'");
  auto supervisor = primary::Supervisor::open(std::move(settings));
  if (!supervisor) cfg.fail(supervisor.error().message);
  return (*supervisor)->run();
}
