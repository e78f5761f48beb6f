// primary-admin: the administration worker. See admin_service.hpp.
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "admin/admin_service.hpp"
#include "admin/log_checkpoint.hpp"
#include "common/log_chain.hpp"
#include "admin/log_file.hpp"
#include "common/names.hpp"
#include "common/client.hpp"
#include "common/config.hpp"
#include "common/events.hpp"
#include "common/layout.hpp"
#include "common/curve.hpp"
#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "common/worker.hpp"

namespace {
// "tcp://*:16770" -> "tcp://127.0.0.1:16770": where this host reaches the front door.
std::string local_endpoint(std::string ep) {
  if (auto pos = ep.find("//*:"); pos != std::string::npos) ep.replace(pos, 4, "//127.0.0.1:");
  return ep;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace primary;
  Config cfg("primary-admin", "Administration worker of the Primary Server");
  add_worker_settings(cfg);
  add_redis_setting(cfg);
  add_event_log_setting(cfg);
  cfg.add_string("front", "tcp://*:16770", "Front door endpoint(s) as configured (firewall rules)");
  cfg.add_string("events", "tcp://*:16771", "Event endpoint(s) as configured (firewall rules)");
  cfg.add_string("broker-front", "", "Where to reach the front door for worker counts (default: from --front)");
  cfg.add_string("endpoints-file", "", "The broker's endpoints file; its front= line is used for worker counts");
  cfg.add_string("web", "", "Web console endpoint(s), for firewall rules");
  cfg.add_string("server-public", "", "Server CURVE public key (Z85); empty in insecure mode");
  cfg.add_string("client-key", "", "This worker's CURVE secret key file, an admin key (secure mode)");
  add_fleet_timing_settings(cfg);
  add_stale_settings(cfg);
  cfg.add_int("started-at", 0, 0, INT64_MAX, "When the server started, Unix ms (for uptime)");
  cfg.add_int("slots", 4, 1, 1024, "Concurrent requests per broker");
  cfg.add_int("stale-count-batch", 1000, 1, 1000000, "Reservations examined per second by the stale recount");
  cfg.add_int("history-interval-ms", 60000, 50, 3600000,
              "How often the fleet's history is sampled (periods stay hourly and daily)");
  cfg.add_string("log-file", "", "Activity log as a rotating text file (empty: none); one admin worker writes it");
  cfg.add_int("log-file-size", 10 * 1024 * 1024, 4096, INT64_MAX, "Bytes per activity log file before rotating");
  cfg.add_int("log-file-count", 5, 1, 1000, "Rotated activity log files kept");
  cfg.add_string("log-key", "", "Ed25519 secret key file that signs activity log checkpoints (empty: none)");
  cfg.add_int("log-checkpoint-every", 1000, 1, 100000000, "Activity log entries between signed checkpoints, at most");
  cfg.add_int("log-checkpoint-s", 600, 1, 86400, "Seconds between signed checkpoints when entries arrived");
  cfg.parse(argc, argv);
  install_stop_signals();
  WorkerOptions wopt = worker_options(cfg, "admin");
  const RedisUrl url = redis_setting(cfg);

  AdminConfig ac;
  ac.check_interval_s = cfg.integer("check-interval-s");
  ac.grace_s = cfg.integer("grace-s");
  ac.stale_unseen_s = cfg.integer("stale-unseen-s");
  ac.stale_lost_s = cfg.integer("stale-lost-s");
  ac.stale_recount_s = cfg.integer("stale-recount-s");
  ac.stale_count_batch = cfg.integer("stale-count-batch");
  ac.started_ms = cfg.integer("started-at") ? cfg.integer("started-at") : unix_ms();
  ac.front = split_list(cfg.str("front"));
  ac.events = split_list(cfg.str("events"));
  ac.web = split_list(cfg.str("web"));
  ac.event_cap = cfg.integer("event-log-cap");
  ac.endpoints_file = cfg.str("endpoints-file");
  std::string broker_front = cfg.str("broker-front");
  if (broker_front.empty() && !ac.front.empty()) broker_front = local_endpoint(ac.front.front());

  layout::ensure_or_exit(cfg, url, kEventLogCap);  // before anything reads or writes the data
  std::unique_ptr<admin::ActivityLogFile> log_file;
  Redis log_redis(url);
  if (!cfg.str("log-file").empty()) {
    admin::LogFileConfig lc;
    lc.path = std::filesystem::absolute(cfg.str("log-file")).string();
    lc.max_size = static_cast<size_t>(cfg.integer("log-file-size"));
    lc.max_files = static_cast<size_t>(cfg.integer("log-file-count"));
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    lc.owner = std::string(host) + ":" + std::to_string(::getpid()) + ":" + random_token(6);
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(lc.path).parent_path(), ec);
    if (!std::ofstream(lc.path, std::ios::app)) cfg.fail("cannot write --log-file " + lc.path);
    log_file = std::make_unique<admin::ActivityLogFile>(log_redis, lc);
  }

  std::unique_ptr<admin::LogCheckpointer> checkpointer;
  Redis checkpoint_redis(url);
  zmq::context_t ctx(1);
  EventPublisher events(ctx, split_list(cfg.str("event-sink")));
  if (!cfg.str("log-key").empty()) {
    auto secret = read_key_file(cfg.str("log-key"), 64, true);
    if (!secret) cfg.fail(secret.error().message);
    admin::CheckpointConfig cc;
    cc.secret_key = *secret;
    cc.every = cfg.integer("log-checkpoint-every");
    cc.interval_ms = cfg.integer("log-checkpoint-s") * 1000;
    cc.event_cap = cfg.integer("event-log-cap");
    ac.log_public = secret->substr(32);
    checkpointer = std::make_unique<admin::LogCheckpointer>(checkpoint_redis, cc, events, unix_ms);
  }

  std::string client_secret;
  if (!cfg.str("client-key").empty()) {
    auto secret = read_curve_secret(cfg.str("client-key"));
    if (!secret) cfg.fail(secret.error().message);
    client_secret = *secret;
  }
  Redis redis(url);
  std::unique_ptr<MdpClient> broker;
  std::string broker_at;
  // The broker may have restarted on another port (port 0 in tests): follow
  // its endpoints file when there is one.
  auto connect_broker = [&] {
    std::string ep = broker_front;
    if (!cfg.str("endpoints-file").empty())
      if (auto front = endpoints_file_value(cfg.str("endpoints-file"), "front")) ep = *front;
    if (!broker || ep != broker_at) {
      ClientOptions co;
      co.endpoints = {ep};
      co.timeout_ms = 500;
      co.server_key = cfg.str("server-public");
      co.secret_key = client_secret;
      co.public_key = curve_public_of(client_secret);
      broker = std::make_unique<MdpClient>(ctx, co);
      broker_at = ep;
    }
    return broker.get();
  };
  AdminService service(redis, ac, unix_ms, [&](std::string_view op) -> Value {
    auto r = connect_broker()->call(svc::kBrokerControl, std::string(op));
    const Value* ok = r ? r->find(field::kOk) : nullptr;
    if (!ok || !ok->is_bool() || !ok->as_bool()) return {};
    return *r;
  }, &events);
  WorkerRuntime rt(ctx, wopt);
  rt.serve("admin", [&](const Request& r) { return service.handle(r); },
           static_cast<int>(cfg.integer("slots")));
  if (log_file) rt.every(std::chrono::milliseconds(250), [&] { log_file->poll(); });
  // A timer's task that fails is logged at most once a minute and simply
  // missed; the next run tries again.
  auto reporter = [](const char* what) {
    return [what, warned = std::chrono::steady_clock::time_point{}](const Status& s) mutable {
      if (!s && std::chrono::steady_clock::now() - warned > std::chrono::minutes(1)) {
        warned = std::chrono::steady_clock::now();
        spdlog::warn("{} missed: {}", what, s.error().message);
      }
    };
  };
  // The history: a sample at start, then every interval and within a
  // second of each new activity log entry (a state change).
  auto report = reporter("history sample");
  report(service.sample_history_on_change());
  rt.every(std::chrono::milliseconds(cfg.integer("history-interval-ms")), [&] { report(service.sample_history()); });
  // One read of the activity log's newest entry serves both the history's
  // change check (every second at most) and the checkpointer (a second
  // while the log stands still, 100 ms while it grows). Every read goes to
  // the checkpointer, which then counts its second from it: the two stay
  // together, and an idle server reads the entry once a second.
  const auto history_check = std::chrono::milliseconds(std::min<int64_t>(cfg.integer("history-interval-ms"), 1000));
  auto history_due = std::chrono::steady_clock::now() + history_check;
  rt.every(std::chrono::milliseconds(std::min<int64_t>(100, history_check.count())), [&] {
    const auto now = std::chrono::steady_clock::now();
    const bool check_history = now >= history_due;
    const bool check_log = checkpointer && now >= checkpointer->next_poll();
    if (!check_history && !check_log) return;
    const auto newest = redis.command(logchain::newest_entry_command());
    if (checkpointer) checkpointer->poll(newest);
    if (check_history) {
      history_due = now + history_check;
      report(service.sample_history_on_change(newest));
    }
  });
  // The stale never-seen count for admin.status: a batch a second while a
  // pass runs, nothing between passes.
  auto report_stale = reporter("stale recount");
  rt.every(std::chrono::seconds(1), [&] { report_stale(service.count_stale()); });
  rt.export_metrics(redis);
  spdlog::info("serving admin (redis {})", redacted(url));
  unblock_stop_signals();
  rt.run(stop_requested());
  if (log_file) {
    log_file->poll();  // what arrived since the last poll
    log_file->release();
  }
  return 0;
}
