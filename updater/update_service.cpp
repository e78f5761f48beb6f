#include "updater/update_service.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>
#include <unordered_map>

#include "common/names.hpp"
#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/keys.hpp"
#include "updater/bundle.hpp"
#include "updater/net.hpp"

namespace primary::updater {
namespace {

constexpr int64_t kLockMs = 60000;

// Adds a release once: a second sync of the same feed changes nothing.
// KEYS: releases, state, gen, events
// ARGV: field, record, state, component, version, channel, size, cap, now
const Script& add_release_script() {
  static const Script s(lua_with_events(R"lua(
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {0, EV} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[3])
emit('update.available', {component = ARGV[4], version = ARGV[5], channel = ARGV[6],
                          size = tonumber(ARGV[7])})
if ARGV[3] ~= 'held' then
  emit('update.approved', {component = ARGV[4], version = ARGV[5], rollout = 100, auto = true})
end
return {1, EV}
)lua"));
  return s;
}

// Approve or hold. Returns {-1} for an unknown release, {0, EV} when the
// state was already that, {1, EV} after the change.
// KEYS: releases, state, gen, events
// ARGV: field, new state, event type, component, version, rollout, cap, now
const Script& set_state_script() {
  static const Script s(lua_with_events(R"lua(
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {-1, EV} end
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then return {0, EV} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[3])
local fields = {component = ARGV[4], version = ARGV[5]}
if ARGV[3] == 'update.approved' then fields['rollout'] = tonumber(ARGV[6]) end
emit(ARGV[3], fields)
return {1, EV}
)lua"));
  return s;
}

// Appends one event with MessagePack fields. KEYS: events  ARGV: type, fields, cap, now
const Script& emit_script() {
  static const Script s(lua_with_events(R"lua(
emit(ARGV[1], cmsgpack.unpack(ARGV[2]))
return {1, EV}
)lua"));
  return s;
}

// Records the feed in force unless a newer one already is.
// KEYS: feed  ARGV: issued, expires, now, source. Returns 1 if recorded.
const Script& record_feed_script() {
  static const Script s(R"lua(
local cur = tonumber(redis.call('HGET', KEYS[1], 'issued') or '-1')
if tonumber(ARGV[1]) < cur then return 0 end
redis.call('HSET', KEYS[1], 'issued', ARGV[1], 'expires', ARGV[2], 'synced_at', ARGV[3], 'source', ARGV[4])
return 1
)lua");
  return s;
}

std::string field_of(const std::string& component, const std::string& version) {
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

bool emit(Redis& redis, EventPublisher& events, int64_t cap, int64_t now, const std::string& type,
          Value fields) {
  auto r = redis.eval(emit_script(), {keys::kEvents}, {type, pack(fields), std::to_string(cap), std::to_string(now)});
  if (!r || !r->is_array() || r->elements.size() < 2) {
    spdlog::warn("could not log {}: {}", type, r ? r->str : r.error().message);
    return false;
  }
  events.publish_entries(r->elements[1]);
  return true;
}

Value map_of(std::initializer_list<std::pair<const char*, Value>> items) {
  Value v(Value::Map{});
  for (const auto& [k, val] : items) v.set(k, val);
  return v;
}

}  // namespace

// ------------------------------------------------------------------ runner

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
  submit(SyncJob{"periodic", "periodic", ""});
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
      auto last = redis.command({"HGET", keys::kUpdSync, "finished_at"});
      const int64_t finished = last && last->is_str() ? std::atoll(last->str.c_str()) : 0;
      if (last && now_ms_() - finished >= config_.sync_interval_s * 1000) {
        job = SyncJob{hex_encode(random_bytes(8)), opname::kSync, ""};
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
                        "started_at", std::to_string(started), "result", result, field::kMessage, message,
                        "added", std::to_string(o.added), "failed", std::to_string(o.failed)};
    if (state == "done") argv.insert(argv.end(), {"finished_at", std::to_string(now_ms_())});
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto r = redis.command(argv);
      if (r && !r->is_error()) return;
      spdlog::warn("could not record the {} job: {}", job.kind, r ? r->str : r.error().message);
      std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
    }
  };
  Result<RedisReply> lock = Error{Code::Unavailable, "not tried"};
  for (int attempt = 0; attempt < 5; ++attempt) {
    lock = redis.command({"SET", keys::kUpdLock, token, "NX", "PX", std::to_string(kLockMs)});
    if (lock && !lock->is_error()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
  }
  if (!lock || !lock->is_status("OK")) {
    const std::string why = lock ? (lock->is_error() ? "the update store answered " + lock->str
                                                     : "another updater instance is syncing")
                                 : "the update store is unavailable: " + lock.error().message;
    spdlog::info("{} {} skipped: {}", job.kind, job.id, why);
    record("done", "skipped", why, {});
    return;
  }
  // Renews the lock while a long transfer runs; false if another took it.
  auto keepalive = [&]() {
    static const Script renew(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
)lua");
    auto r = redis.eval(renew, {keys::kUpdLock}, {token, std::to_string(kLockMs)});
    return r && r->is_int() && r->integer == 1;
  };
  record("running", "", "", {});
  const std::string source = job.kind == opname::kImport ? job.path : redacted_url(config_.feed_url);
  auto refuse = [&](const std::string& why) {
    spdlog::warn("{} of {} refused: {}", job.kind, source, why);
    emit(redis, events, config_.event_cap, now_ms_(), event::kUpdateRefused,
         map_of({{"source", Value(source)}, {"kind", Value(job.kind)}, {field::kReason, Value(why)}}));
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
        auto current = redis.command({"HGET", keys::kUpdFeed, "issued"});
        const int64_t in_force = current && current->is_str() ? std::atoll(current->str.c_str()) : -1;
        if (!current) {
          refuse("the update store is unavailable: " + current.error().message);
        } else if (manifest->issued < in_force) {
          refuse("older than the feed in force (issued " + std::to_string(manifest->issued) + " < " +
                 std::to_string(in_force) + "): possible rollback");
        } else {
          auto obtain = [&](const Release& r) -> std::optional<Error> {
            if (job.kind == opname::kSync) {
              const std::string url = r.url.empty() ? sibling_url(config_.feed_url, r.file) : r.url;
              auto got = store_.download(r, url, keepalive);
              if (!got) return got.error();
              if (got->resumed_from > 0)
                spdlog::info("{} {}: resumed at byte {} of {}", r.component, r.version, got->resumed_from, r.size);
              return std::nullopt;
            }
            auto it = bundle.files.find(r.file);
            if (it == bundle.files.end()) return Error{Code::NotFound, "file '" + r.file + "' is not in the bundle"};
            auto err = store_.adopt(r, it->second);
            bundle.files.erase(it);
            return err;
          };
          outcome = apply(*manifest, source, redis, events, obtain);
          auto rec = redis.eval(record_feed_script(), {keys::kUpdFeed},
                                {std::to_string(manifest->issued), std::to_string(manifest->expires),
                                 std::to_string(now_ms_()), source});
          if (!rec) spdlog::warn("could not record the feed: {}", rec.error().message);
          emit(redis, events, config_.event_cap, now_ms_(), event::kUpdateSynced,
               map_of({{"source", Value(source)},
                       {"kind", Value(job.kind)},
                       {"issued", Value(manifest->issued)},
                       {"releases", Value(static_cast<int64_t>(manifest->releases.size()))},
                       {"added", Value(outcome.added)},
                       {"failed", Value(outcome.failed)}}));
          record("done", outcome.failed ? "partial" : field::kOk, outcome.first_failure, outcome);
          spdlog::info("{} of {}: {} releases, {} added, {} failed", job.kind, source,
                       manifest->releases.size(), outcome.added, outcome.failed);
        }
      }
    }
  }
  for (auto& [name, staged] : bundle.files) ::unlink(staged.c_str());
  static const Script release_lock(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua");
  redis.eval(release_lock, {keys::kUpdLock}, {token});
}

SyncRunner::Outcome SyncRunner::apply(const Manifest& m, const std::string& source, Redis& redis,
                                      EventPublisher& events,
                                      const std::function<std::optional<Error>(const Release&)>& obtain) {
  Outcome o;
  for (const Release& r : m.releases) {
    const std::string field = field_of(r.component, r.version);
    auto known = redis.command({"HEXISTS", keys::kUpdReleases, field});
    const bool catalogued = known && known->is_int() && known->integer == 1;
    if (catalogued && store_.has(r.sha256)) {
      ++o.present;
      continue;
    }
    if (!store_.has(r.sha256)) {
      if (auto err = obtain(r)) {
        ++o.failed;
        if (o.first_failure.empty()) o.first_failure = r.component + " " + r.version + ": " + err->message;
        spdlog::warn("{} {} from {}: {}", r.component, r.version, source, err->message);
        emit(redis, events, config_.event_cap, now_ms_(), event::kUpdateDownloadFailed,
             map_of({{field::kComponent, Value(r.component)},
                     {field::kVersion, Value(r.version)},
                     {field::kSha256, Value(r.sha256)},
                     {"source", Value(source)},
                     {field::kReason, Value(err->message)}}));
        continue;
      }
    }
    if (catalogued) continue;
    Value record = release_to_value(r);
    record.set("issued", Value(m.issued));
    record.set("added_at", Value(now_ms_()));
    const std::string state = config_.auto_approve.count(r.channel) ? "approved:100" : "held";
    auto added = redis.eval(add_release_script(),
                            {keys::kUpdReleases, keys::kUpdState, keys::kUpdGen, keys::kEvents},
                            {field, pack(record), state, r.component, r.version, r.channel,
                             std::to_string(r.size), std::to_string(config_.event_cap), std::to_string(now_ms_())});
    if (!added || !added->is_array() || added->elements.size() < 2) {
      ++o.failed;
      if (o.first_failure.empty())
        o.first_failure = "cannot record " + field + ": " + (added ? added->str : added.error().message);
      continue;
    }
    events.publish_entries(added->elements[1]);
    if (added->elements[0].integer == 1) ++o.added;
  }
  return o;
}

// ----------------------------------------------------------------- service

UpdateService::UpdateService(Redis& redis, ArtifactStore& store, SyncRunner& runner, UpdateConfig config,
                             EventPublisher& events, Clock now_ms)
    : redis_(redis),
      store_(store),
      runner_(runner),
      config_(std::move(config)),
      events_(events),
      now_ms_(std::move(now_ms)) {}

std::optional<Error> UpdateService::refresh() {
  auto gen = redis_.command({"GET", keys::kUpdGen});
  if (!gen) return gen.error();
  if (gen->is_error()) return Error{Code::Unavailable, gen->str};
  const std::string g = gen->is_str() ? gen->str : "0";
  if (g == generation_) return std::nullopt;
  auto all = redis_.pipeline({{"HGETALL", keys::kUpdReleases}, {"HGETALL", keys::kUpdState}, {"GET", keys::kUpdGen}});
  if (!all) return all.error();
  const RedisReply& recs = (*all)[0];
  const RedisReply& states = (*all)[1];
  if (!recs.is_array() || !states.is_array()) return Error{Code::Unavailable, "catalogue not readable"};
  std::unordered_map<std::string, std::string> state_of;
  for (size_t i = 0; i + 1 < states.elements.size(); i += 2)
    state_of[states.elements[i].str] = states.elements[i + 1].str;
  std::vector<Entry> entries;
  for (size_t i = 0; i + 1 < recs.elements.size(); i += 2) {
    auto v = unpack_map(recs.elements[i + 1].str);
    if (!v) continue;
    auto r = release_from_value(*v);
    if (!r) {
      spdlog::warn("skipping catalogue entry {}: {}", recs.elements[i].str, r.error().message);
      continue;
    }
    Entry e;
    e.semver = *parse_semver(r->version);
    e.release = std::move(*r);
    const std::string& st = state_of[recs.elements[i].str];
    if (st.rfind("approved:", 0) == 0) {
      e.approved = true;
      e.rollout = std::clamp(std::atoi(st.c_str() + 9), 0, 100);
    }
    if (const Value* x = v->find("issued"); x && x->is_int()) e.issued = x->as_int();
    if (const Value* x = v->find("added_at"); x && x->is_int()) e.added_at = x->as_int();
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.release.component != b.release.component) return a.release.component < b.release.component;
    return compare_semver(a.semver, b.semver) > 0;
  });
  entries_ = std::move(entries);
  generation_ = (*all)[2].is_str() ? (*all)[2].str : "0";
  return std::nullopt;
}

const UpdateService::Entry* UpdateService::find(const std::string& component, const std::string& version) const {
  for (const Entry& e : entries_)
    if (e.release.component == component && e.release.version == version) return &e;
  return nullptr;
}

std::vector<Reply> UpdateService::handle_update(const std::vector<Request>& requests) {
  std::vector<Reply> replies;
  replies.reserve(requests.size());
  // One catalogue check per batch, not per request.
  if (auto err = refresh()) {
    spdlog::warn("redis: {}", err->message);
    for (size_t i = 0; i < requests.size(); ++i)
      replies.push_back(Reply::failure(Code::Unavailable, "the update store is unavailable; retry"));
    return replies;
  }
  for (const Request& req : requests)
    switch (req.id()) {
      case Op::Check: replies.push_back(check(req)); break;
      case Op::Fetch: replies.push_back(fetch(req)); break;
      default: replies.push_back(Reply::failure(Code::UnknownOp, "operation not served"));
    }
  return replies;
}

Reply UpdateService::check(const Request& req) {
  const std::string component(req.str(field::kComponent));
  const std::string channel(req.str(field::kChannel, "stable"));
  const std::string computer(req.str(field::kComputer));
  auto current = parse_semver(req.str(field::kVersion));
  if (!current) return Reply::failure(Code::BadRequest, "field 'version': not a semantic version (1.2.3)");
  const int group = computer.empty() ? 100 : rollout_group(computer);
  for (const Entry& e : entries_) {  // newest first within a component
    const Release& r = e.release;
    if (r.component != component || r.channel != channel || !e.approved) continue;
    if (compare_semver(e.semver, *current) <= 0) break;
    // A computer takes a release when its group is below the rollout
    // percentage; without a name only a full rollout is offered.
    if (!(e.rollout >= 100 || group < e.rollout)) continue;
    if (!store_.has(r.sha256)) continue;
    Value u(Value::Map{});
    u.set(field::kComponent, Value(r.component));
    u.set(field::kVersion, Value(r.version));
    u.set(field::kChannel, Value(r.channel));
    u.set(field::kSize, Value(r.size));
    u.set(field::kSha256, Value(r.sha256));
    u.set(field::kSignature, Value(r.signature));
    if (!r.notes.empty()) u.set(field::kNotes, Value(r.notes));
    return Reply::success({{field::kUpdate, u}});
  }
  return Reply::success({{field::kUpdate, Value()}});
}

Reply UpdateService::fetch(const Request& req) {
  const std::string sha(req.str(field::kSha256));
  const int64_t offset = req.integer(field::kOffset);
  const int64_t length = req.integer(field::kLength);
  if (!valid_sha256_hex(sha)) return Reply::failure(Code::BadRequest, "field 'sha256': expected 64 lowercase hex digits");
  bool known = false;
  for (const Entry& e : entries_) known = known || e.release.sha256 == sha;
  if (!known) return Reply::failure(Code::NotFound, "no release with that sha256");
  int64_t size = 0;
  auto data = store_.read(sha, offset, length, &size);
  if (!data) return Reply::failure(Code::Unavailable, "release not stored on this updater yet; retry later");
  if (offset > size)
    return Reply::failure(Code::BadRequest, "field 'offset': beyond the end (size " + std::to_string(size) + ")");
  // Built by moves: a 1 MiB chunk is not copied into the reply.
  Value::Map fields;
  fields.reserve(3);
  fields.emplace_back(field::kData, Value(Bin{std::move(*data)}));
  fields.emplace_back(field::kOffset, Value(offset));
  fields.emplace_back(field::kSize, Value(size));
  return Reply::success(std::move(fields));
}

std::vector<Reply> UpdateService::handle_control(const std::vector<Request>& requests) {
  std::vector<Reply> replies;
  replies.reserve(requests.size());
  for (const Request& req : requests) {
    switch (req.id()) {
      case Op::Releases: replies.push_back(releases(req)); break;
      case Op::Approve: replies.push_back(set_state(req, true)); break;
      case Op::Hold: replies.push_back(set_state(req, false)); break;
      case Op::Sync: replies.push_back(queue_job(req, opname::kSync)); break;
      case Op::Import: replies.push_back(queue_job(req, opname::kImport)); break;
      default: replies.push_back(Reply::failure(Code::UnknownOp, "operation not served"));
    }
  }
  return replies;
}

Reply UpdateService::releases(const Request&) {
  if (auto err = refresh()) {
    spdlog::warn("redis: {}", err->message);
    return Reply::failure(Code::Unavailable, "the update store is unavailable; retry");
  }
  Value::Array items;
  for (const Entry& e : entries_) {
    Value v = release_to_value(e.release);
    v.set(field::kState, Value(e.approved ? "approved" : "held"));
    v.set(field::kRollout, Value(static_cast<int64_t>(e.approved ? e.rollout : 0)));
    v.set("stored", Value(store_.has(e.release.sha256)));
    v.set("issued", Value(e.issued));
    v.set("added_at", Value(e.added_at));
    items.push_back(std::move(v));
  }
  auto extra = redis_.pipeline({{"HGETALL", keys::kUpdFeed}, {"HGETALL", keys::kUpdSync}});
  if (!extra) return Reply::failure(Code::Unavailable, "the update store is unavailable; retry");
  // Times and counts become integers; everything else (a job id may be all
  // digits) stays the string it is.
  auto as_map = [](const RedisReply& r) {
    static const std::set<std::string> numeric = {"issued",     "expires",     "synced_at", "started_at",
                                                  "finished_at", "added",      "failed"};
    Value m(Value::Map{});
    for (size_t i = 0; r.is_array() && i + 1 < r.elements.size(); i += 2) {
      const std::string& k = r.elements[i].str;
      const std::string& val = r.elements[i + 1].str;
      if (numeric.count(k)) m.set(k, Value(static_cast<int64_t>(std::atoll(val.c_str()))));
      else m.set(k, Value(val));
    }
    return m;
  };
  Value feed = as_map((*extra)[0]);
  if (!config_.feed_url.empty()) feed.set("url", Value(redacted_url(config_.feed_url)));
  return Reply::success({{field::kItems, Value(std::move(items))}, {field::kFeed, feed}, {field::kSync, as_map((*extra)[1])}});
}

Reply UpdateService::set_state(const Request& req, bool approve) {
  const std::string component(req.str(field::kComponent));
  const std::string version(req.str(field::kVersion));
  const int64_t rollout = req.get(field::kRollout) ? req.integer(field::kRollout) : 100;
  if (!approve && req.get(field::kRollout)) return Reply::failure(Code::BadRequest, "field 'rollout': only for approve");
  const std::string state = approve ? "approved:" + std::to_string(rollout) : "held";
  auto r = redis_.eval(set_state_script(), {keys::kUpdReleases, keys::kUpdState, keys::kUpdGen, keys::kEvents},
                       {field_of(component, version), state, approve ? event::kUpdateApproved : event::kUpdateHeld, component,
                        version, std::to_string(rollout), std::to_string(config_.event_cap),
                        std::to_string(now_ms_())});
  if (!r) {
    spdlog::warn("redis: {}", r.error().message);
    return Reply::failure(Code::Unavailable, "the update store is unavailable; retry");
  }
  if (!r->is_array() || r->elements.empty()) {
    spdlog::error("state script failed: {}", r->str);
    return Reply::failure(transient_error(*r) ? Code::Unavailable : Code::Internal, "could not change the release state");
  }
  if (r->elements[0].integer < 0) return Reply::failure(Code::NotFound, "no release " + component + " " + version);
  if (r->elements.size() > 1) events_.publish_entries(r->elements[1]);
  return Reply::success({{field::kComponent, Value(component)},
                         {field::kVersion, Value(version)},
                         {field::kState, Value(approve ? "approved" : "held")},
                         {field::kRollout, Value(approve ? rollout : int64_t{0})}});
}

Reply UpdateService::queue_job(const Request& req, const std::string& kind) {
  SyncJob job{hex_encode(random_bytes(8)), kind, std::string(req.str(field::kPath))};
  if (kind == opname::kImport) {
    if (job.path.empty() || job.path[0] != '/')
      return Reply::failure(Code::BadRequest, "field 'path': an absolute path on the updater's host");
    if (::access(job.path.c_str(), R_OK) != 0)
      return Reply::failure(Code::NotFound, "field 'path': cannot read " + job.path + " on the updater's host");
  }
  if (config_.vendor_public.empty())
    return Reply::failure(Code::Unavailable, "no vendor key configured (--vendor-key): releases cannot be verified");
  if (kind == opname::kSync && config_.feed_url.empty())
    return Reply::failure(Code::Unavailable, "no vendor feed configured (--update-feed URL)");
  if (!runner_.submit(job))
    return Reply::failure(Code::Busy, "a sync or import is already running on this updater; retry later",
                          {{field::kRetryAfterS, Value(5)}});
  return Reply::success({{field::kJob, Value(job.id)}, {field::kStarted, Value(true)}});
}

}  // namespace primary::updater
