#include "updater/sync_runner.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>
#include <unordered_map>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/keys.hpp"
#include "common/names.hpp"
#include "common/redis_lock.hpp"
#include "updater/bundle.hpp"
#include "updater/lua_scripts.hpp"
#include "updater/net.hpp"

namespace primary::updater {

std::string release_field(const std::string& component, const std::string& version) {
  return component + " " + version;
}

std::string redacted_url(const std::string& url) {
  // user:password@ in a feed URL stays out of logs and events.
  auto scheme = url.find("://");
  auto at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  auto slash = url.find('/', scheme + 3);
  if (slash != std::string::npos && slash < at) return url;
  return url.substr(0, scheme + 3) + "***" + url.substr(at);
}

namespace {

constexpr int64_t kLockMs = 60000;

// The sync's scripts: updater/lua/add_release.lua and record_feed.lua.
const Script& add_release_script() { return embedded_script<lua::kAddRelease>(); }
const Script& record_feed_script() { return embedded_script<lua::kRecordFeed>(); }

// What every event of a job carries: its id and who requested it.
Value::Map job_fields(const SyncJob& job) {
  Value::Map out{{field::kJob, Value(job.id)}};
  out.insert(out.end(), job.by.begin(), job.by.end());
  return out;
}

// Logs an event of a job to the activity log, with job_fields(), and
// publishes it; a failure is logged here (the sync goes on without the
// event).
void emit(Redis& redis, EventPublisher& events, int64_t cap, int64_t now, const SyncJob& job,
          const std::string& type, Value fields) {
  for (auto& [k, v] : job_fields(job)) fields.set(k, std::move(v));
  if (auto r = append_event(redis, type, fields, "", cap, now))
    events.publish_entries(r->entries);
  else
    spdlog::warn("could not log {}: {}", type, r.error().message);
}

Value map_of(std::initializer_list<std::pair<const char*, Value>> items) {
  Value v(Value::Map{});
  for (const auto& [k, val] : items) v.set(k, val);
  return v;
}

}  // namespace

struct SyncRunner::Outcome {
  int64_t added = 0, failed = 0, present = 0;
  std::string first_failure;
};

SyncRunner::SyncRunner(RedisUrl url, ArtifactStore& store, UpdateConfig config, zmq::context_t& ctx,
                       std::vector<std::string> event_sinks, Clock now_ms)
    : url_(std::move(url)),
      store_(store),
      config_(std::move(config)),
      ctx_(ctx),
      sinks_(std::move(event_sinks)),
      now_ms_(std::move(now_ms)) {
  thread_ = std::thread([this] { loop(); });
}

SyncRunner::~SyncRunner() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool SyncRunner::submit(const SyncJob& job) {
  {
    std::lock_guard lock(mu_);
    if (busy_ || !queue_.empty()) return false;
    queue_.push_back(job);
  }
  cv_.notify_all();
  return true;
}

void SyncRunner::periodic() {
  if (config_.sync_interval_s <= 0 || config_.feed_url.empty()) return;
  {
    std::lock_guard lock(mu_);
    if (busy_ || !queue_.empty()) return;
  }
  // Checked on the serving side's Redis would need a connection per thread;
  // the runner thread checks the time of the last sync itself (loop()).
  submit(SyncJob{"periodic", "periodic", "", {}});
}

void SyncRunner::loop() {
  Redis redis(url_);
  EventPublisher events(ctx_, sinks_);
  while (true) {
    SyncJob job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
      busy_ = true;
    }
    if (job.kind == "periodic") {
      // Every instance ticks; only one syncs per interval.
      auto last = redis.command({"HGET", keys::kUpdSync, field::kFinishedAt});
      const int64_t finished = last && last->is_str() ? std::atoll(last->str.c_str()) : 0;
      if (last && now_ms_() - finished >= config_.sync_interval_s * 1000) {
        job = SyncJob{hex_encode(random_bytes(8)), opname::kSync, "", {}};
        run(job, redis, events);
      }
    } else {
      run(job, redis, events);
    }
    std::lock_guard lock(mu_);
    busy_ = false;
  }
}

void SyncRunner::run(const SyncJob& job, Redis& redis, EventPublisher& events) {
  const int64_t started = now_ms_();
  const std::string token = job.id + "." + hex_encode(random_bytes(4));
  // The job's outcome must reach ps:upd:sync (admins and primaryctl wait on
  // it), so a write that fails on a broken connection is tried again.
  auto record = [&](const std::string& state, const std::string& result, const std::string& message,
                    const Outcome& o) {
    Redis::Argv argv = {"HSET", keys::kUpdSync, field::kJob, job.id, "kind", job.kind, field::kState, state,
                        field::kStartedAt, std::to_string(started), field::kResult, result, field::kMessage, message,
                        field::kAdded, std::to_string(o.added), field::kFailed, std::to_string(o.failed)};
    if (state == "done") argv.insert(argv.end(), {field::kFinishedAt, std::to_string(now_ms_())});
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto r = redis.command(argv);
      if (r && !r->is_error()) return;
      spdlog::warn("could not record the {} job: {}", job.kind, r ? r->str : r.error().message);
      std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
    }
  };
  ExpiringLock lock(redis, keys::kUpdLock, token, kLockMs);
  Result<bool> taken = Error{Code::Unavailable, "not tried"};
  for (int attempt = 0; attempt < 5; ++attempt) {
    taken = lock.take();
    if (taken) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
  }
  if (!taken || !*taken) {
    const std::string why = taken ? "another updater instance is syncing"
                                  : "the update store is unavailable: " + taken.error().message;
    spdlog::info("{} {} skipped: {}", job.kind, job.id, why);
    record("done", "skipped", why, {});
    return;
  }
  // Renews the lock while a long transfer runs; false if another took it.
  auto keepalive = [&]() {
    auto renewed = lock.renew();
    return renewed && *renewed;
  };
  record("running", "", "", {});
  const std::string source = job.kind == opname::kImport ? job.path : redacted_url(config_.feed_url);
  auto refuse = [&](const std::string& why) {
    spdlog::warn("{} of {} refused: {}", job.kind, source, why);
    emit(redis, events, config_.event_cap, now_ms_(), job, event::kUpdateRefused,
         map_of({{field::kSource, Value(source)}, {"kind", Value(job.kind)}, {field::kReason, Value(why)}}));
    record("done", "refused", why, {});
  };

  Outcome outcome;
  std::string staging;
  UnpackedBundle bundle;
  std::string feed_bytes;
  if (config_.vendor_public.empty()) {
    refuse("no vendor key configured (--vendor-key): releases cannot be verified");
  } else if (job.kind == opname::kSync && config_.feed_url.empty()) {
    refuse("no vendor feed configured (--update-feed URL)");
  } else {
    bool have = false;
    if (job.kind == opname::kSync) {
      auto fetched = fetch_url(config_.feed_url, config_.max_feed_bytes);
      if (!fetched) {
        refuse(fetched.error().message);
      } else {
        feed_bytes = std::move(*fetched);
        have = true;
      }
    } else {
      auto net = net_api();
      auto unpacked = net ? (*net)->read_bundle(job.path, store_.dir() + "/partial")
                          : Result<UnpackedBundle>(net.error());
      if (!unpacked) {
        refuse(unpacked.error().message);
      } else {
        bundle = std::move(*unpacked);
        feed_bytes = bundle.feed;
        have = true;
      }
    }
    if (have) {
      auto manifest = open_feed(feed_bytes, config_.vendor_public, now_ms_());
      if (!manifest) {
        refuse(manifest.error().message);
      } else {
        auto current = redis.command({"HGET", keys::kUpdFeed, field::kIssued});
        const int64_t in_force = current && current->is_str() ? std::atoll(current->str.c_str()) : -1;
        if (!current) {
          refuse("the update store is unavailable: " + current.error().message);
        } else if (manifest->issued < in_force) {
          refuse("older than the feed in force (issued " + std::to_string(manifest->issued) + " < " +
                 std::to_string(in_force) + "): possible rollback");
        } else {
          auto obtain = [&](const Release& r) -> Status {
            if (job.kind == opname::kSync) {
              const std::string url = r.url.empty() ? sibling_url(config_.feed_url, r.file) : r.url;
              auto got = store_.download(r, url, keepalive);
              if (!got) return got.error();
              if (got->resumed_from > 0)
                spdlog::info("{} {}: resumed at byte {} of {}", r.component, r.version, got->resumed_from, r.size);
              return {};
            }
            auto it = bundle.files.find(r.file);
            if (it == bundle.files.end()) return Error{Code::NotFound, "file '" + r.file + "' is not in the bundle"};
            auto adopted = store_.adopt(r, it->second);
            bundle.files.erase(it);
            return adopted;
          };
          outcome = apply(job, *manifest, source, redis, events, obtain);
          auto rec = redis.eval(record_feed_script(), {keys::kUpdFeed},
                                {std::to_string(manifest->issued), std::to_string(manifest->expires),
                                 std::to_string(now_ms_()), source});
          if (!rec) spdlog::warn("could not record the feed: {}", rec.error().message);
          emit(redis, events, config_.event_cap, now_ms_(), job, event::kUpdateSynced,
               map_of({{field::kSource, Value(source)},
                       {"kind", Value(job.kind)},
                       {field::kIssued, Value(manifest->issued)},
                       {"releases", Value(static_cast<int64_t>(manifest->releases.size()))},
                       {field::kAdded, Value(outcome.added)},
                       {field::kFailed, Value(outcome.failed)}}));
          record("done", outcome.failed ? "partial" : field::kOk, outcome.first_failure, outcome);
          spdlog::info("{} of {}: {} releases, {} added, {} failed", job.kind, source,
                       manifest->releases.size(), outcome.added, outcome.failed);
        }
      }
    }
  }
  for (auto& [name, staged] : bundle.files) ::unlink(staged.c_str());
  (void)lock.release();
}

SyncRunner::Outcome SyncRunner::apply(const SyncJob& job, const Manifest& m, const std::string& source, Redis& redis,
                                      EventPublisher& events,
                                      const std::function<Status(const Release&)>& obtain) {
  Outcome o;
  // The releases it adds are logged as the job's, like its other events.
  const std::string job_who = pack(Value(job_fields(job)));
  for (const Release& r : m.releases) {
    const std::string field = release_field(r.component, r.version);
    auto known = redis.command({"HEXISTS", keys::kUpdReleases, field});
    const bool catalogued = known && known->is_int() && known->integer == 1;
    if (catalogued && store_.has(r.sha256)) {
      ++o.present;
      continue;
    }
    if (!store_.has(r.sha256)) {
      if (auto obtained = obtain(r); !obtained) {
        const Error& err = obtained.error();
        ++o.failed;
        if (o.first_failure.empty()) o.first_failure = r.component + " " + r.version + ": " + err.message;
        spdlog::warn("{} {} from {}: {}", r.component, r.version, source, err.message);
        emit(redis, events, config_.event_cap, now_ms_(), job, event::kUpdateDownloadFailed,
             map_of({{field::kComponent, Value(r.component)},
                     {field::kVersion, Value(r.version)},
                     {field::kSha256, Value(r.sha256)},
                     {field::kSource, Value(source)},
                     {field::kReason, Value(err.message)}}));
        continue;
      }
    }
    if (catalogued) continue;
    Value record = release_to_value(r);
    record.set(field::kIssued, Value(m.issued));
    record.set(field::kAddedAt, Value(now_ms_()));
    const std::string state = config_.auto_approve.count(r.channel) ? "approved:100" : "held";
    auto added = redis.eval(add_release_script(),
                            {keys::kUpdReleases, keys::kUpdState, keys::kUpdGen, keys::kEvents},
                            {field, pack(record), state, r.component, r.version, r.channel,
                             std::to_string(r.size), job_who, std::to_string(config_.event_cap),
                             std::to_string(now_ms_())});
    const auto a = added ? count_and_events(*added) : std::nullopt;
    if (!a) {
      ++o.failed;
      if (o.first_failure.empty())
        o.first_failure = "cannot record " + field + ": " + (added ? added->str : added.error().message);
      continue;
    }
    events.publish_entries(*a->events);
    if (a->count == 1) ++o.added;
  }
  return o;
}

}  // namespace primary::updater
