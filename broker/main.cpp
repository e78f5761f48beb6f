// primary-broker: the front door. See broker.hpp.
#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <fstream>

#include "broker/broker.hpp"
#include "common/config.hpp"
#include "common/curve.hpp"
#include "common/log.hpp"
#include "common/process.hpp"

int main(int argc, char** argv) {
  using namespace primary;
  // Large bodies (update chunks of 1 MiB) pass through at a high rate: keep
  // freed memory in the heap rather than unmapping and faulting it in again.
  mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
  Config cfg("primary-broker", "MDP/0.1 broker of the Primary Server");
  const BrokerOptions defaults;
  cfg.add_string("front", defaults.front, "Front door endpoint (ROUTER) for clients");
  cfg.add_string("events", defaults.events, "Event stream endpoint (XPUB)");
  cfg.add_string("workers-endpoint", defaults.workers, "Endpoint (ROUTER) where workers connect");
  cfg.add_string("event-sink", defaults.event_sink, "Endpoint (XSUB) where workers publish events");
  cfg.add_string("endpoints-file", "", "After binding, write the bound endpoints to this file");
  cfg.add_int("queue-limit", 10000, 1, 10000000, "Requests queued per service before BUSY");
  cfg.add_int("request-timeout-ms", 5000, 10, 600000, "Deadline for a request to reach a worker");
  cfg.add_int("heartbeat-ms", 2500, 10, 600000, "Worker heartbeat interval");
  cfg.add_int("heartbeat-liveness", 3, 1, 100, "Missed heartbeats before a worker is dead");
  cfg.add_int("max-body", 4 << 20, 1024, 256 << 20, "Largest request body accepted, bytes");
  cfg.add_flag("insecure", "No CURVE; privileged services answer loopback peers only");
  cfg.add_string("server-key", "", "Server CURVE secret key file (Z85, mode 0600); required unless --insecure");
  cfg.add_string("admin-keys", "", "Admin allow-list: Z85 public keys, one a line (re-read on SIGHUP)");
  cfg.add_string("trusted-keys", "", "Public keys (Z85, comma-separated) that always have the admin role");
  add_log_setting(cfg);
  cfg.add_config_file();
  cfg.parse(argc, argv);
  if (!init_logging("broker", cfg.str("log-level"))) cfg.fail("bad value for log-level: '" + cfg.str("log-level") + "'");

  BrokerOptions opt;
  opt.front = cfg.str("front");
  opt.events = cfg.str("events");
  opt.workers = cfg.str("workers-endpoint");
  opt.event_sink = cfg.str("event-sink");
  opt.queue_limit = static_cast<size_t>(cfg.integer("queue-limit"));
  opt.request_timeout = std::chrono::milliseconds(cfg.integer("request-timeout-ms"));
  opt.heartbeat = std::chrono::milliseconds(cfg.integer("heartbeat-ms"));
  opt.liveness = static_cast<int>(cfg.integer("heartbeat-liveness"));
  opt.max_body = static_cast<size_t>(cfg.integer("max-body"));
  opt.insecure = cfg.flag("insecure");
  if (!opt.insecure) {
    if (cfg.str("server-key").empty()) cfg.fail("secure mode needs --server-key FILE (or run with --insecure)");
    auto secret = read_curve_secret(cfg.str("server-key"));
    if (!secret) cfg.fail(secret.error().message);
    opt.curve_secret = *secret;
  }
  opt.admin_keys_file = cfg.str("admin-keys");
  for (const auto& k : split_list(cfg.str("trusted-keys"))) {
    if (!valid_z85_key(k)) cfg.fail("--trusted-keys: not a Z85 public key: '" + k + "'");
    opt.trusted_keys.insert(k);
  }

  install_stop_signals();
  zmq::context_t ctx(1);
  Broker broker(ctx, opt);
  auto bound = broker.bind();
  if (!bound) cfg.fail(bound.error().message);
  spdlog::info("listening front={} events={} workers={} event-sink={}", bound->front,
               bound->events, bound->workers, bound->event_sink);
  if (opt.insecure)
    spdlog::warn("insecure mode: no encryption; privileged services answer loopback peers only");
  else
    spdlog::info("secure mode: CURVE on the front door and the event stream");
  if (!cfg.str("endpoints-file").empty()) {
    const std::string text = "front=" + bound->front + "\nevents=" + bound->events +
                             "\nworkers=" + bound->workers + "\nevent-sink=" + bound->event_sink + "\n";
    if (auto written = write_file_atomic(cfg.str("endpoints-file"), text, 0644); !written)
      cfg.fail("endpoints file: " + written.error().message);
  }
  std::atomic<bool>& reload = install_reload_signal();
  // The stop and reload signals stay blocked: Broker::run takes them only
  // while it sleeps in ppoll(), so no libzmq call is ever interrupted (an
  // interrupted one throws, and SIGHUP killed the broker that way).
  broker.run(stop_requested(), &reload);
  spdlog::info("stopped");
  return 0;
}
