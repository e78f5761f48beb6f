#include "updater/update_service.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/keys.hpp"
#include "common/names.hpp"
#include "common/redis_failure.hpp"
#include "updater/lua_scripts.hpp"

namespace primary::updater {
namespace {

// The store named in failure replies (common/redis_failure.hpp).
constexpr std::string_view kStore = "update store";

// updater/lua/set_state.lua: approve or hold.
const Script& set_state_script() { return embedded_script<lua::kSetState>(); }

}  // namespace

UpdateService::UpdateService(Redis& redis, ArtifactStore& store, SyncRunner& runner, UpdateConfig config,
                             EventPublisher& events, Clock now_ms)
    : redis_(redis),
      store_(store),
      runner_(runner),
      config_(std::move(config)),
      events_(events),
      now_ms_(std::move(now_ms)) {}

Status UpdateService::refresh() {
  auto gen = redis_.command({"GET", keys::kUpdGen});
  if (!gen) return gen.error();
  if (gen->is_error()) return reply_error(*gen);
  const std::string g = gen->is_str() ? gen->str : "0";
  if (g == generation_) return {};
  auto all = redis_.pipeline({{"HGETALL", keys::kUpdReleases}, {"HGETALL", keys::kUpdState}, {"GET", keys::kUpdGen}});
  if (!all) return all.error();
  const RedisReply& recs = (*all)[0];
  const RedisReply& states = (*all)[1];
  if (!recs.is_array()) return reply_error(recs);
  if (!states.is_array()) return reply_error(states);
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
    if (const Value* x = v->find(field::kIssued); x && x->is_int()) e.issued = x->as_int();
    if (const Value* x = v->find(field::kAddedAt); x && x->is_int()) e.added_at = x->as_int();
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.release.component != b.release.component) return a.release.component < b.release.component;
    return compare_semver(a.semver, b.semver) > 0;
  });
  entries_ = std::move(entries);
  generation_ = (*all)[2].is_str() ? (*all)[2].str : "0";
  return {};
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
  if (auto fresh = refresh(); !fresh) {
    const Reply failure = redis_failure(fresh.error(), kStore);
    for (size_t i = 0; i < requests.size(); ++i) replies.push_back(failure);
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
    return Reply::success({{field::kUpdate, release_offer(r)}});
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
  if (auto fresh = refresh(); !fresh) return redis_failure(fresh.error(), kStore);
  Value::Array items;
  for (const Entry& e : entries_) {
    Value v = release_to_value(e.release);
    v.set(field::kState, Value(e.approved ? "approved" : "held"));
    v.set(field::kRollout, Value(static_cast<int64_t>(e.approved ? e.rollout : 0)));
    v.set("stored", Value(store_.has(e.release.sha256)));
    v.set(field::kIssued, Value(e.issued));
    v.set(field::kAddedAt, Value(e.added_at));
    items.push_back(std::move(v));
  }
  auto extra = redis_.pipeline({{"HGETALL", keys::kUpdFeed}, {"HGETALL", keys::kUpdSync}});
  if (!extra) return redis_failure(extra.error(), kStore);
  // Times and counts become integers; everything else (a job id may be all
  // digits) stays the string it is.
  auto as_map = [](const RedisReply& r) {
    static const std::set<std::string> numeric = {field::kIssued,    field::kExpires,    "synced_at", field::kStartedAt,
                                                  field::kFinishedAt, field::kAdded, field::kFailed};
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
  if (!config_.feed_url.empty()) feed.set(field::kUrl, Value(redacted_url(config_.feed_url)));
  return Reply::success({{field::kItems, Value(std::move(items))}, {field::kFeed, feed}, {field::kSync, as_map((*extra)[1])}});
}

Reply UpdateService::set_state(const Request& req, bool approve) {
  const std::string component(req.str(field::kComponent));
  const std::string version(req.str(field::kVersion));
  const int64_t rollout = req.get(field::kRollout) ? req.integer(field::kRollout) : 100;
  if (!approve && req.get(field::kRollout)) return Reply::failure(Code::BadRequest, "field 'rollout': only for approve");
  const std::string state = approve ? "approved:" + std::to_string(rollout) : "held";
  auto r = redis_.eval(set_state_script(), {keys::kUpdReleases, keys::kUpdState, keys::kUpdGen, keys::kEvents},
                       {release_field(component, version), state, approve ? event::kUpdateApproved : event::kUpdateHeld, component,
                        version, std::to_string(rollout), pack_who(who_of(req)), std::to_string(config_.event_cap),
                        std::to_string(now_ms_())});
  if (!r) return redis_failure(r.error(), kStore);
  const auto a = count_and_events(*r);
  if (!a) return redis_failure(*r, kStore);
  if (a->count < 0) return Reply::failure(Code::NotFound, "no release " + component + " " + version);
  events_.publish_entries(*a->events);
  return Reply::success({{field::kComponent, Value(component)},
                         {field::kVersion, Value(version)},
                         {field::kState, Value(approve ? "approved" : "held")},
                         {field::kRollout, Value(approve ? rollout : int64_t{0})}});
}

Reply UpdateService::queue_job(const Request& req, const std::string& kind) {
  const Who who = who_of(req);
  SyncJob job{hex_encode(random_bytes(8)), kind, std::string(req.str(field::kPath)), who_fields(who)};
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
  // The job's own events name the requester too; this one says when it
  // was asked for, whatever the job then does.
  Value fields(Value::Map{{field::kJob, Value(job.id)}});
  if (!job.path.empty()) fields.set(field::kPath, Value(job.path));
  if (auto r = append_event(redis_, kind == opname::kImport ? event::kImportRequested : event::kSyncRequested, fields,
                            pack_who(who), config_.event_cap, now_ms_()))
    events_.publish_entries(r->entries);
  else
    spdlog::warn("could not log the {} request: {}", kind, r.error().message);
  return Reply::success({{field::kJob, Value(job.id)}, {field::kStarted, Value(true)}});
}

}  // namespace primary::updater
