// primary-updater: the update worker. See update_service.hpp.
#include <malloc.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/names.hpp"
#include "common/config.hpp"
#include "common/layout.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "common/worker.hpp"
#include "updater/net.hpp"
#include "updater/update_service.hpp"

int main(int argc, char** argv) {
  using namespace primary;
  using namespace primary::updater;
  // Fetch replies are 1 MiB buffers made and freed at a high rate: keep
  // freed memory in the heap instead of returning it to the kernel (and
  // faulting it in, zeroed, again for the next chunk). Measured by
  // `primary-bench download`: about 4x the rate, about 25 MiB more RSS.
  mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
  Config cfg("primary-updater", "Update worker of the Primary Server: vendor feed, approvals, downloads");
  add_worker_settings(cfg);
  add_redis_setting(cfg);
  cfg.add_string("update-dir", "", "Directory of stored release files (objects/, partial/)");
  cfg.add_string("vendor-key", "", "Vendor public key file (vendor.pub) that signs feeds and releases");
  cfg.add_string("update-feed", "", "Vendor feed URL (https://, http:// or file://); empty: offline imports only");
  cfg.add_int("sync-interval-s", 21600, 0, 30 * 86400, "Seconds between periodic feed syncs (0: never)");
  cfg.add_string("auto-approve", "", "Channels whose new releases arrive approved, comma-separated");
  add_event_log_setting(cfg);
  cfg.add_int("slots", 8, 1, 1024, "Concurrent requests per service per broker (batch size)");
  cfg.parse(argc, argv);
  install_stop_signals();
  WorkerOptions wopt = worker_options(cfg, "updater");
  const RedisUrl url = redis_setting(cfg);

  UpdateConfig uc;
  if (cfg.str("update-dir").empty()) cfg.fail("no update directory: give --update-dir DIR");
  // The network module is loaded at the first sync or import: a missing one
  // is a broken installation, said at start-up rather than at the first job.
  if (const std::string net = net_module_path(); ::access(net.c_str(), R_OK) != 0)
    cfg.fail("cannot read the updater's network module " + net + ": " + std::strerror(errno));
  auto store = ArtifactStore::open(cfg.str("update-dir"));
  if (!store) cfg.fail(store.error().message);
  if (!cfg.str("vendor-key").empty()) {
    auto vendor = read_key_file(cfg.str("vendor-key"), 32, false);
    if (!vendor) cfg.fail(vendor.error().message);
    uc.vendor_public = *vendor;
  }
  uc.feed_url = cfg.str("update-feed");
  if (!uc.feed_url.empty() && uc.feed_url.rfind("https://", 0) != 0 && uc.feed_url.rfind("http://", 0) != 0 &&
      uc.feed_url.rfind("file://", 0) != 0)
    cfg.fail("--update-feed must be an https://, http:// or file:// URL: '" + uc.feed_url + "'");
  uc.sync_interval_s = cfg.integer("sync-interval-s");
  for (const auto& ch : split_list(cfg.str("auto-approve"))) uc.auto_approve.insert(ch);
  uc.event_cap = cfg.integer("event-log-cap");

  layout::ensure_or_exit(cfg, url, cfg.integer("event-log-cap"));  // before anything reads or writes the data
  zmq::context_t ctx(1);
  Redis redis(url);
  const auto sinks = split_list(cfg.str("event-sink"));
  EventPublisher events(ctx, sinks);
  SyncRunner runner(url, *store, uc, ctx, sinks, unix_ms);
  UpdateService service(redis, *store, runner, uc, events, unix_ms);
  WorkerRuntime rt(ctx, wopt);
  const int slots = static_cast<int>(cfg.integer("slots"));
  rt.serve_batch(
      svc::kUpdate,
      [&](const std::vector<Request>& r) {
        auto replies = service.handle_update(r);
        // Update bytes served: the data of every fetch answered.
        int64_t served = 0;
        for (size_t k = 0; k < r.size() && k < replies.size(); ++k)
          if (replies[k].ok && r[k].id() == Op::Fetch)
            if (const Value* data = replies[k].fields.find(field::kData); data && data->kind() == Value::Kind::Bin)
              served += static_cast<int64_t>(data->as_bin().bytes.size());
        if (served) rt.metrics().add("update_bytes_served", served);
        return replies;
      },
      slots);
  rt.serve_batch(svc::kUpdateControl, [&](const std::vector<Request>& r) { return service.handle_control(r); }, slots);
  if (uc.sync_interval_s > 0 && !uc.feed_url.empty()) {
    // Ticks once a minute; the runner syncs when the interval has passed
    // since the last sync on any instance (so the first tick syncs at start).
    runner.periodic();
    rt.every(std::chrono::seconds(60), [&] { runner.periodic(); });
  }
  rt.export_metrics(redis);
  spdlog::info("serving update and update.control (store {}, feed {})", store->dir(),
               uc.feed_url.empty() ? "none" : uc.feed_url);
  unblock_stop_signals();
  rt.run(stop_requested());
  return 0;
}
