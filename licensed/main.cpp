// primary-licensed: the licensing worker. See license_service.hpp.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>

#include "common/names.hpp"
#include "common/config.hpp"
#include "common/layout.hpp"
#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "common/worker.hpp"
#include "licensed/license_service.hpp"

int main(int argc, char** argv) {
  using namespace primary;
  Config cfg("primary-licensed", "Licensing worker of the Primary Server");
  add_worker_settings(cfg);
  add_redis_setting(cfg);
  cfg.add_string("vendor-key", "", "Vendor public key file (vendor.pub); without it unlock is refused");
  cfg.add_string("lease-key", "",
                 "Server lease key file (secret, mode 0600; re-read when it changes: key rotation)");
  cfg.add_string("client-endpoints", "tcp://127.0.0.1:16770",
                 "Front door endpoint(s) Clients should use, comma-separated (for setup_info)");
  cfg.add_string("endpoints-file", "",
                 "The broker's endpoints file: a wildcard port (* or 0) in --client-endpoints is replaced "
                 "by the port the broker bound");
  cfg.add_string("server-public", "", "Server CURVE public key (Z85) for setup_info; empty in insecure mode");
  add_fleet_timing_settings(cfg);
  cfg.add_int("unlicensed-interval-s", 60, 1, 86400, "Interval for unverified Clients");
  cfg.add_int("clock-skew-s", 300, 1, 365 * 86400,
              "Report a Client whose clock is further than this from the server's (never refused)");
  cfg.add_int("clock-jump-s", 300, 1, 7 * 86400,
              "Skip a lost-client sweep when the wall clock and the steady clock disagree by more than this");
  add_event_log_setting(cfg);
  cfg.add_int("last-seen-quantum-ms", -1, -1, 3600000,
              "Rewrite a computer's last-seen time only when the recorded one is this old "
              "(-1: the lease quantum, check interval / 240 between 1 and 60 s; 0: every heartbeat)");
  cfg.add_int("slots", 128, 1, 1024, "Concurrent requests per service per broker (batch size)");
  cfg.add_string("redis-wait-replicas", "auto",
                 "Replicas that must confirm a reservation, unlock or registration before it is "
                 "acknowledged (WAIT): a number, 0 to never wait, or auto (1 while the master has "
                 "a connected replica)");
  cfg.add_int("redis-wait-timeout-ms", 1000, 1, 60000,
              "How long a write waits for its replicas before it is answered UNAVAILABLE");
  cfg.parse(argc, argv);
  install_stop_signals();
  WorkerOptions wopt = worker_options(cfg, "licensed");

  const RedisUrl url = redis_setting(cfg);
  RedisOptions ropt;
  if (const std::string& w = cfg.str("redis-wait-replicas"); w != "auto") {
    char* end = nullptr;
    const long n = std::strtol(w.c_str(), &end, 10);
    if (w.empty() || *end != '\0' || n < 0 || n > 16)
      cfg.fail("bad value for redis-wait-replicas: '" + w + "' (expected auto or 0..16)");
    ropt.wait_replicas = static_cast<int>(n);
  }
  ropt.wait_timeout_ms = static_cast<int>(cfg.integer("redis-wait-timeout-ms"));
  if (cfg.str("lease-key").empty()) cfg.fail("no lease signing key: give --lease-key FILE");
  const std::string lease_file = cfg.str("lease-key");
  auto lease = read_lease_keys(lease_file);
  if (!lease) cfg.fail(lease.error().message);

  LicenseConfig lc;
  lc.lease_keys = *lease;
  if (!cfg.str("vendor-key").empty()) {
    auto vendor = read_key_file(cfg.str("vendor-key"), 32, false);
    if (!vendor) cfg.fail(vendor.error().message);
    lc.vendor_public = *vendor;
  }
  lc.client_endpoints = split_list(cfg.str("client-endpoints"));
  lc.endpoints_file = cfg.str("endpoints-file");
  lc.check_interval_s = cfg.integer("check-interval-s");
  lc.unlicensed_interval_s = cfg.integer("unlicensed-interval-s");
  lc.grace_s = cfg.integer("grace-s");
  lc.clock_jump_s = cfg.integer("clock-jump-s");
  lc.clock_skew_s = cfg.integer("clock-skew-s");
  lc.event_cap = cfg.integer("event-log-cap");
  lc.last_seen_quantum_ms = cfg.integer("last-seen-quantum-ms");
  lc.server_key = cfg.str("server-public");

  layout::ensure_or_exit(cfg, url, cfg.integer("event-log-cap"));  // before anything reads or writes the data
  zmq::context_t ctx(1);
  Redis redis(url, ropt);
  EventPublisher events(ctx, split_list(cfg.str("event-sink")));
  LicenseService service(redis, lc, events, unix_ms);
  WorkerRuntime rt(ctx, wopt);
  service.count_with([&rt](std::string_view name, int64_t n) { rt.metrics().add(name, n); });
  const int slots = static_cast<int>(cfg.integer("slots"));
  rt.serve_batch(svc::kLicense, [&](const std::vector<Request>& r) { return service.handle_license(r); }, slots);
  rt.serve_batch(svc::kLicenseControl, [&](const std::vector<Request>& r) { return service.handle_control(r); },
                 slots);
  rt.every(std::chrono::milliseconds(service.sweep_interval_ms()), [&] { service.sweep(); });
  // A rotation (primaryctl keys rotate-lease) rewrites the key file: take
  // the new set within a second. A file that no longer reads keeps the set
  // in force, logged once per change.
  FileStamp lease_stamp = file_stamp(lease_file);
  rt.every(std::chrono::seconds(1), [&] {
    const FileStamp now = file_stamp(lease_file);
    if (now == lease_stamp) return;
    lease_stamp = now;
    auto keys = read_lease_keys(lease_file);
    if (!keys) {
      spdlog::error("lease keys not reloaded: {}", keys.error().message);
      return;
    }
    spdlog::info("lease keys reloaded from {}: {} key(s)", lease_file, keys->keys.size());
    service.set_lease_keys(std::move(*keys));
  });
  rt.export_metrics(redis);
  spdlog::info("serving license and license.control (redis {})", redacted(url));
  unblock_stop_signals();
  rt.run(stop_requested());
  return 0;
}
