#include "licensed/license_service.hpp"

#include <spdlog/spdlog.h>

#include <msgpack.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "common/names.hpp"
#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/redis_failure.hpp"
#include "common/redis_lock.hpp"
#include "common/tokens.hpp"
#include "licensed/scripts.hpp"

namespace primary {

using namespace licensing;
using namespace keys;

namespace {

// Computers remembered as answered unlicensed, at most.
constexpr size_t kRejectedMax = 65536;
// How long a computer answered unlicensed gets no lease signed ahead.
constexpr int64_t kRejectedForgetMs = 600000;
// Heartbeats per script call (a call of 128 holds Redis about 2 ms).
constexpr size_t kHeartbeatsPerCall = 128;
// Reservations per script call.
constexpr size_t kReservationsPerCall = 128;

// Fields of one entry of a heartbeat's `results`.
const std::vector<Field>& result_fields() {
  static const std::vector<Field> fields = {{field::kId, FieldType::Str, true, 1, 64},
                                            {field::kOk, FieldType::Bool, true},
                                            {field::kDetail, FieldType::Str, false, 0, 1024}};
  return fields;
}

}  // namespace

LicenseService::LicenseService(Redis& redis, LicenseConfig config, EventPublisher& events,
                               Clock now_ms, SteadyClock steady_ms)
    : redis_(redis),
      config_(std::move(config)),
      events_(events),
      now_ms_(std::move(now_ms)),
      steady_ms_(std::move(steady_ms)),
      leases_(config_.lease_keys, config_.check_interval_s + config_.grace_s, lease_quantum_s()) {
  if (!steady_ms_)
    steady_ms_ = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
}

namespace {

// The store named in failure replies (common/redis_failure.hpp).
constexpr std::string_view kStore = "license store";

}  // namespace

int64_t LicenseService::lease_quantum_s() const {
  return std::clamp<int64_t>(config_.check_interval_s / 240, 1, 60);
}

int64_t LicenseService::last_seen_quantum_ms() const {
  return config_.last_seen_quantum_ms >= 0 ? config_.last_seen_quantum_ms : lease_quantum_s() * 1000;
}

std::string heartbeat_fingerprint(std::string_view license, std::string_view version, std::string_view peer,
                                  std::optional<int64_t> bucket, std::optional<int64_t> skew_s) {
  msgpack::sbuffer buf(64 + license.size() + version.size() + peer.size());
  msgpack::packer<msgpack::sbuffer> pk(buf);
  const auto str = [&](std::string_view v) {
    pk.pack_str(static_cast<uint32_t>(v.size()));
    pk.pack_str_body(v.data(), static_cast<uint32_t>(v.size()));
  };
  str("l");
  str(license);
  str("v");
  str(version);
  str("p");
  str(peer);
  if (skew_s) {
    str("k");
    pk.pack_int64(*skew_s);
  }
  if (bucket) {
    str("s");
    pk.pack_int64(*bucket);
  }
  return std::string(buf.data(), buf.size());
}

std::optional<int64_t> LicenseService::skew_of(const Request& r, int64_t now_ms) const {
  const Value* client_time = r.get(field::kClientTime);
  if (!client_time || !client_time->is_int()) return std::nullopt;
  const int64_t skew = client_time->as_int() - now_ms / 1000;
  if (std::abs(skew) <= config_.clock_skew_s) return std::nullopt;
  spdlog::warn("{}: clock off by {} s (client_time {}, server {})", r.str(field::kComputer), skew,
               client_time->as_int(), now_ms / 1000);
  return skew;
}

std::vector<Reply> LicenseService::handle_license(const std::vector<Request>& reqs) {
  std::vector<Reply> replies(reqs.size());
  std::vector<size_t> heartbeats;  // indexes of the well-formed requests
  std::vector<std::string> packed_results;
  const int64_t now = now_ms_();
  const std::string cap = std::to_string(config_.event_cap);
  const std::string reject_window = std::to_string(config_.reject_window_s);
  for (size_t i = 0; i < reqs.size(); ++i) {
    const Request& r = reqs[i];
    std::string results;
    if (const Value* res = r.get(field::kResults)) {
      Value clean = Value(Value::Array{});
      bool bad = false;
      for (const Value& item : res->as_array()) {
        if (!item.is_map()) {
          replies[i] = Reply::failure(Code::BadRequest, "field 'results': expected maps {id, ok, detail?}");
          bad = true;
          break;
        }
        Value copy = item;
        if (auto valid = validate_fields(result_fields(), copy); !valid) {
          replies[i] = Reply::failure(Code::BadRequest, "field 'results': " + valid.error().message);
          bad = true;
          break;
        }
        Value entry = Value(Value::Map{});
        for (const auto& f : result_fields())
          if (const Value* v = copy.find(f.name)) entry.set(f.name, *v);
        clean.as_array().push_back(std::move(entry));
      }
      if (bad) continue;
      if (!clean.as_array().empty()) results = pack(clean);
    }
    heartbeats.push_back(i);
    packed_results.push_back(std::move(results));
  }
  // One script call per chunk of the batch (scripts.cpp: the call itself is
  // most of a heartbeat's cost in Redis); chunks bound how long one call
  // holds Redis.
  const int64_t quantum = last_seen_quantum_ms();
  const std::optional<int64_t> bucket = quantum > 0 ? std::optional<int64_t>(now / quantum) : std::nullopt;
  std::vector<Redis::Argv> calls;
  for (size_t from = 0; from < heartbeats.size(); from += kHeartbeatsPerCall) {
    const size_t to = std::min(heartbeats.size(), from + kHeartbeatsPerCall);
    Redis::Argv keys{kSerial, kReservations, kMeta, kActive, kLost, kStats, kSkewed, kRetired};
    Redis::Argv args{reject_window, bucket ? std::to_string(*bucket) : std::string()};
    keys.reserve(keys.size() + 3 * (to - from) + 1);
    args.reserve(args.size() + 3 * (to - from) + 2);
    for (size_t k = from; k < to; ++k) {
      const Request& r = reqs[heartbeats[k]];
      const std::string name(r.str(field::kComputer));
      keys.push_back(command_key(name));
      keys.push_back(reject_key(name));
      keys.push_back(sent_key(name));
      args.push_back(name);
      args.push_back(
          heartbeat_fingerprint(r.str(field::kLicense), r.str(field::kVersion), r.peer.address, bucket, skew_of(r, now)));
      args.push_back(std::move(packed_results[k]));
    }
    keys.push_back(kEventStream);
    args.push_back(cap);
    args.push_back(std::to_string(now));
    calls.push_back(redis_.script_call(heartbeat_script(), std::move(keys), std::move(args)));
  }
  if (calls.empty()) return replies;
  // Signing the leases overlaps Redis's work on the calls. At a large fleet
  // most heartbeats need a new lease (a Client comes back once per check
  // interval), and signing after the answer kept this worker's next call
  // out of Redis for that long.
  if (now - rejected_since_ms_ > kRejectedForgetMs || rejected_.size() > kRejectedMax) {
    rejected_.clear();
    rejected_since_ms_ = now;
  }
  std::vector<LeaseCache::Wanted> guesses;
  if (!serial_.empty()) {
    guesses.reserve(heartbeats.size());
    for (size_t i : heartbeats)
      if (const Request& r = reqs[i]; rejected_.empty() || !rejected_.contains(r.str(field::kComputer)))
        guesses.push_back({i, r.str(field::kComputer), r.str(field::kLicense), serial_});
  }
  std::vector<LeaseCache::Cached> ahead;
  // The leases wanted point into `reqs` and `out` (the serial).
  const auto out = redis_.pipeline(calls, [&] { ahead = leases_.sign_ahead(guesses, reqs.size(), now / 1000); });
  std::vector<LeaseCache::Wanted> wanted;
  auto done = batch_replies(out, heartbeats.size(), kHeartbeatsPerCall, 3, 0,
                            [&](size_t k, const RedisReply& entry, const RedisReply& answer) {
                              bool licensed = false;
                              std::optional<Reply> reply = heartbeat_reply(entry, now, licensed);
                              if (!reply) return redis_failure(entry, kStore);
                              const Request& r = reqs[heartbeats[k]];
                              if (licensed) {
                                const RedisReply& serial = answer.elements[2];
                                if (!serial.is_str()) return redis_failure(answer, kStore);
                                wanted.push_back({heartbeats[k], r.str(field::kComputer), r.str(field::kLicense), serial.str});
                                if (auto it = rejected_.find(r.str(field::kComputer)); it != rejected_.end())
                                  rejected_.erase(it);
                              } else {
                                rejected_.emplace(r.str(field::kComputer));
                              }
                              return std::move(*reply);
                            });
  for (size_t k = 0; k < heartbeats.size(); ++k) replies[heartbeats[k]] = std::move(done[k]);
  if (out)
    for (const RedisReply& answer : *out)
      if (answer.is_array() && answer.elements.size() > 2 && answer.elements[2].is_str())
        serial_ = answer.elements[2].str;
  leases_.add_leases(wanted, replies, now / 1000, ahead);
  return replies;
}

std::vector<Reply> LicenseService::batch_replies(
    const Result<std::vector<RedisReply>>& out, size_t items, size_t per_call, size_t answer_size, size_t width,
    const std::function<Reply(size_t, const RedisReply&, const RedisReply&)>& reply_of) {
  std::vector<Reply> replies;
  replies.reserve(items);
  for (size_t from = 0; from < items; from += per_call) {
    const size_t to = std::min(items, from + per_call);
    const RedisReply* rr = out ? &(*out)[from / per_call] : nullptr;
    const bool well_formed = rr && rr->is_array() && rr->elements.size() >= std::max<size_t>(answer_size, 2) &&
                             rr->elements[0].is_array() && rr->elements[0].elements.size() == to - from;
    if (well_formed) events_.publish_entries(rr->elements[1]);
    for (size_t k = from; k < to; ++k) {
      if (!out) {
        replies.push_back(redis_failure(out.error(), kStore));
      } else if (!well_formed) {
        replies.push_back(redis_failure(*rr, kStore));
      } else if (const RedisReply& entry = rr->elements[0].elements[k - from];
                 width > 0 && (!entry.is_array() || entry.elements.size() != width)) {
        replies.push_back(redis_failure(entry, kStore));
      } else {
        replies.push_back(reply_of(k, entry, *rr));
      }
    }
  }
  return replies;
}

std::optional<Reply> LicenseService::heartbeat_reply(const RedisReply& entry, int64_t now, bool& licensed) {
  const auto answer = heartbeat_answer(entry);
  if (!answer) return std::nullopt;
  if (!answer->licensed) {
    return Reply::success({{field::kStatus, Value(status::kUnlicensed)},
                           {field::kReason, Value(std::string(answer->reason))},
                           {field::kServerTime, Value(now / 1000)},
                           {field::kNextCheckS, Value(config_.unlicensed_interval_s)},
                           {field::kUpload, Value(false)}});
  }
  licensed = true;
  Value::Map fields{{field::kStatus, Value(status::kLicensed)},
                    {field::kNextCheckS, Value(config_.check_interval_s)},
                    {field::kServerTime, Value(now / 1000)},
                    {field::kUpload, Value(true)}};  // lease and lease_expires: LeaseCache::add_leases()
  if (!answer->commands.empty()) {
    Value::Array cmds;
    for (std::string_view c : answer->commands)
      if (auto v = unpack_value(c); v && v->is_map()) cmds.push_back(std::move(*v));
    fields.emplace_back(field::kCommands, Value(std::move(cmds)));
  }
  return Reply::success(std::move(fields));
}

std::vector<Reply> LicenseService::handle_control(const std::vector<Request>& reqs) {
  std::vector<Reply> replies(reqs.size());
  std::vector<const Request*> reserves;
  std::vector<size_t> reserve_at;
  for (size_t i = 0; i < reqs.size(); ++i) {
    switch (reqs[i].id()) {
      case Op::Reserve:
        reserves.push_back(&reqs[i]);
        reserve_at.push_back(i);
        break;
      case Op::SetupInfo: replies[i] = setup_info(reqs[i]); break;
      case Op::Registration: replies[i] = registration(reqs[i]); break;
      case Op::Unlock: replies[i] = unlock(reqs[i]); break;
      case Op::Command: replies[i] = command(reqs[i]); break;
      case Op::Retire:
      case Op::Transfer: replies[i] = seat(reqs[i]); break;
      default: replies[i] = Reply::failure(Code::UnknownOp, "operation not served");
    }
  }
  if (!reserves.empty()) {
    auto done = reserve_batch(reserves);
    for (size_t k = 0; k < done.size(); ++k) replies[reserve_at[k]] = std::move(done[k]);
  }
  return replies;
}

std::vector<Reply> LicenseService::reserve_batch(const std::vector<const Request*>& reqs) {
  const std::string cap = std::to_string(config_.event_cap);
  const std::string now = std::to_string(now_ms_());
  // One script call per chunk (scripts.cpp), each with its own new keys.
  std::vector<Redis::Argv> calls;
  for (size_t from = 0; from < reqs.size(); from += kReservationsPerCall) {
    const size_t to = std::min(reqs.size(), from + kReservationsPerCall);
    // Each reservation names its requester by index: a batch holds one or a
    // few (the Control Center, the console for its browsers).
    Redis::Argv args{std::to_string(to - from)};
    std::vector<std::string> requesters;
    for (size_t k = from; k < to; ++k) {
      std::string who = pack_who(who_of(*reqs[k]));
      auto at = std::find(requesters.begin(), requesters.end(), who);
      if (at == requesters.end()) at = requesters.insert(requesters.end(), std::move(who));
      args.insert(args.end(), {std::string(reqs[k]->str(field::kComputer)), random_token(16),
                               std::to_string(at - requesters.begin() + 1)});
    }
    for (std::string& who : requesters) args.push_back(std::move(who));
    args.insert(args.end(), {cap, now});
    calls.push_back(redis_.script_call(reserve_script(), {kSerial, kReservations, kMeta, kEventStream}, std::move(args)));
  }
  return batch_replies(
      redis_.pipeline_replicated(calls), reqs.size(), kReservationsPerCall, 2, 4,
      [&](size_t k, const RedisReply& one, const RedisReply&) {
        const auto answer = reserve_answer(one);
        if (!answer) return redis_failure(one, kStore);
        const int64_t reserved = answer->reserved, purchased = answer->purchased;
        switch (answer->status) {
          case ReserveAnswer::Status::NotUnlocked:
            return Reply::failure(Code::NotUnlocked, "no serial number has been unlocked yet");
          case ReserveAnswer::Status::NoLicensesLeft:
            return Reply::failure(Code::NoLicensesLeft,
                                  "all " + std::to_string(purchased) + " licenses are reserved",
                                  {{field::kReserved, Value(reserved)}, {field::kPurchased, Value(purchased)}});
          case ReserveAnswer::Status::Created:
          case ReserveAnswer::Status::Exists:
            break;
        }
        return Reply::success({{field::kLicense, Value(std::string(answer->license))},
                               {field::kComputer, Value(std::string(reqs[k]->str(field::kComputer)))},
                               {field::kCreated, Value(answer->status == ReserveAnswer::Status::Created)},
                               {field::kReserved, Value(reserved)},
                               {field::kPurchased, Value(purchased)}});
      });
}

Reply LicenseService::setup_info(const Request& req) {
  const std::string name(req.str(field::kComputer));
  // lease_key: the key that signs now (what setups before key rotation
  // hold); lease_keys: every key a verifier should accept now.
  Value::Array key_set;
  for (const std::string& pub : leases_.keys().published(now_ms_() / 1000))
    key_set.emplace_back(base64url_encode(pub));
  if (key_set.empty()) return Reply::failure(Code::Unavailable, "no lease key is in force (see the lease key file)");
  auto out = redis_.eval(setup_info_script(), {kReservations, kSerial, kEventStream},
                         {name, pack_who(who_of(req)), std::to_string(config_.event_cap), std::to_string(now_ms_())});
  if (!out) return redis_failure(out.error(), kStore);
  if (!out->is_array() || out->elements.size() != 3 || !out->elements[1].is_str()) return redis_failure(*out, kStore);
  events_.publish_entries(out->elements[2]);
  if (!out->elements[0].is_str()) return Reply::failure(Code::NotFound, "no license is reserved for " + name);
  Value::Array endpoints;
  for (auto& ep : with_bound_ports(config_.client_endpoints, config_.endpoints_file, "front"))
    endpoints.emplace_back(std::move(ep));
  Value::Map fields{{field::kComputer, Value(name)},
                    {field::kLicense, Value(out->elements[0].str)},
                    {field::kSerial, Value(out->elements[1].str)},
                    {field::kEndpoints, Value(std::move(endpoints))}};
  fields.emplace_back(field::kLeaseKey, key_set.front());
  fields.emplace_back(field::kLeaseKeys, Value(std::move(key_set)));
  if (!config_.server_key.empty()) fields.emplace_back(field::kServerKey, Value(config_.server_key));
  return Reply::success(std::move(fields));
}

Result<std::string> LicenseService::install_id() {
  if (!install_id_.empty()) return install_id_;
  auto out = redis_.pipeline_replicated({{"SET", kInstallId, random_token(18), "NX"}, {"GET", kInstallId}});
  if (!out) return out.error();
  if (!(*out)[1].is_str()) {
    Error e = reply_error((*out)[1]);
    e.message = "install id: " + e.message;
    return e;
  }
  install_id_ = (*out)[1].str;
  return install_id_;
}

Reply LicenseService::registration(const Request& req) {
  const std::string serial(req.str(field::kSerial));
  std::string code;
  if (!serial.empty()) {
    if (!valid_serial(serial))
      return Reply::failure(Code::BadRequest, "field 'serial': expected 1 to 64 of A-Z a-z 0-9 - _ .");
    auto id = install_id();
    if (!id) return redis_failure(id.error(), kStore);
    code = registration_code(serial, *id);
  }
  auto out = redis_.eval_replicated(registration_script(), {kSerial, kEventStream},
                                    {serial, code, pack_who(who_of(req)), std::to_string(config_.event_cap),
                                     std::to_string(now_ms_())});
  if (!out) return redis_failure(out.error(), kStore);
  const auto a = registration_answer(*out);
  if (!a) return redis_failure(*out, kStore);
  if (a->status == RegistrationAnswer::Status::None)
    return Reply::failure(Code::NotFound, "no serial number is registered yet");
  if (a->events) events_.publish_entries(*a->events);
  if (a->status == RegistrationAnswer::Status::Locked)
    return Reply::failure(Code::BadRequest, "field 'serial': this server is already unlocked for serial " +
                                                std::string(a->serial));
  return Reply::success({{field::kSerial, Value(std::string(a->serial))},
                         {field::kRegistrationCode, Value(std::string(a->code))}});
}

Reply LicenseService::unlock(const Request& req) {
  if (config_.vendor_public.empty())
    return Reply::failure(Code::Unavailable,
                          "this server has no vendor key; start it with --vendor-key FILE");
  auto code = parse_unlock_code(req.str(field::kUnlockCode), config_.vendor_public);
  if (!code) return Reply::failure(code.error());
  auto out = redis_.eval_replicated(unlock_script(), {kSerial, kEventStream},
                         {code->serial, code->registration, std::to_string(code->licenses),
                          std::to_string(code->issued), std::string(req.str(field::kUnlockCode)),
                          pack_who(who_of(req)), std::to_string(config_.event_cap), std::to_string(now_ms_())});
  if (!out) return redis_failure(out.error(), kStore);
  const auto a = unlock_answer(*out);
  if (!a) return redis_failure(*out, kStore);
  if (!a->ok) return Reply::failure(Code::InvalidUnlockCode, std::string(a->reason));
  if (a->events) events_.publish_entries(*a->events);
  spdlog::info("serial {} unlocked for {} licenses", code->serial, code->licenses);
  return Reply::success({{field::kSerial, Value(code->serial)}, {field::kPurchased, Value(code->licenses)}});
}

Reply LicenseService::command(const Request& req) {
  const std::string name(req.str(field::kComputer));
  const std::string id = random_token(12);
  Value entry = Value(Value::Map{{field::kId, Value(id)},
                                 {field::kCommand, Value(std::string(req.str(field::kCommand)))},
                                 {"queued", Value(now_ms_())}});
  if (const Value* args = req.get(field::kArgs)) entry.set(field::kArgs, *args);
  auto out = redis_.eval(command_script(), {kReservations, command_key(name), kMeta, kEventStream},
                         {name, id, pack(entry), std::to_string(config_.command_queue_limit),
                          std::string(req.str(field::kCommand)), pack_who(who_of(req)),
                          std::to_string(config_.event_cap), std::to_string(now_ms_())});
  if (!out) return redis_failure(out.error(), kStore);
  const auto a = command_answer(*out);
  if (!a) return redis_failure(*out, kStore);
  if (a->status == CommandAnswer::Status::NotFound)
    return Reply::failure(Code::NotFound, "no license is reserved for " + name);
  if (a->status == CommandAnswer::Status::Full)
    return Reply::failure(Code::Busy, "command queue for " + name + " is full",
                          {{field::kRetryAfterS, Value(config_.unlicensed_interval_s)}});
  if (a->events) events_.publish_entries(*a->events);
  return Reply::success({{field::kId, Value(id)}});
}

namespace {

// What an INVALID_SEAT_CODE reply says for a reason found in Redis.
std::string seat_refusal_message(std::string_view reason, const SeatCode& c) {
  if (reason == seat::kOtherRegistration) return "the seat code is for another server's registration code";
  if (reason == seat::kUsed) return "the seat code has been applied already";
  if (reason == seat::kNotReserved) return c.computer + " holds no reservation";
  if (reason == seat::kOtherLicense)
    return c.computer + " holds another license than the seat code names (its seat changed since)";
  if (reason == seat::kNameTaken) return c.to + " holds a reservation already";
  return "seat code refused: " + std::string(reason);
}

}  // namespace

Reply LicenseService::seat(const Request& req) {
  if (config_.vendor_public.empty())
    return Reply::failure(Code::Unavailable, "this server has no vendor key; start it with --vendor-key FILE");
  const bool transfer = req.id() == Op::Transfer;
  const std::string kind = transfer ? seat::kTransfer : seat::kRetire;
  const Who who = who_of(req);
  const std::string& actor = who.actor;
  const std::string by = pack_who(who);
  const int64_t now = now_ms_();
  const std::string cap = std::to_string(config_.event_cap), at = std::to_string(now);
  const auto refused = [&](std::string_view reason, const std::string& message) {
    spdlog::warn("{} code refused ({}) from {}: {}", kind, reason, actor, message);
    return Reply::failure(Code::InvalidSeatCode, message, {{field::kReason, Value(std::string(reason))}});
  };
  // Refusals found before Redis: logged by seat_refused.lua.
  const auto refused_early = [&](std::string_view reason, const std::string& message, const SeatCode* c) {
    auto out = redis_.eval(seat_refused_script(), {kEventStream},
                           {kind, std::string(reason), c ? c->computer : "", c ? c->to : "", c ? c->id : "",
                            by, cap, at});
    if (out && out->is_array() && !out->elements.empty())
      events_.publish_entries(out->elements[0]);
    else
      spdlog::warn("could not log {}: {}", event::kSeatCodeRefused, out ? out->str : out.error().message);
    return refused(reason, message);
  };
  auto code = parse_seat_code(req.str(field::kCode), config_.vendor_public);
  if (!code) return refused_early(seat::kTampered, code.error().message, nullptr);
  if (code->kind != kind)
    return refused_early(seat::kWrongKind, "this is a " + code->kind + " code; apply it with " + code->kind, &*code);
  if (now >= code->expires) return refused_early(seat::kExpired, "the seat code has expired; ask the vendor for a new one", &*code);
  Redis::Argv keys{kSerial,   kReservations, kMeta, kActive, kLost, kSkewed, kRetired, kSeatCodes,
                   command_key(code->computer), sent_key(code->computer), kEventStream};
  Redis::Argv args{code->registration, code->computer, code->license};
  std::string new_license;
  if (transfer) {
    new_license = random_token(16);
    args.insert(args.end(), {code->to, new_license});
  }
  args.insert(args.end(), {code->id, by, cap, at});
  auto out = redis_.eval_replicated(transfer ? transfer_script() : retire_script(), std::move(keys), std::move(args));
  if (!out) return redis_failure(out.error(), kStore);
  const auto a = seat_answer(*out);
  if (!a) return redis_failure(*out, kStore);
  if (a->events) events_.publish_entries(*a->events);
  if (!a->ok) return refused(a->reason, seat_refusal_message(a->reason, *code));
  Value::Map fields{{field::kComputer, Value(code->computer)}};
  if (transfer) {
    spdlog::info("seat of {} transferred to {} by {} (seat code {})", code->computer, code->to, actor, code->id);
    fields.emplace_back(field::kTo, Value(code->to));
    fields.emplace_back(field::kLicense, Value(new_license));
  } else {
    spdlog::info("seat of {} retired by {} (seat code {})", code->computer, actor, code->id);
  }
  fields.emplace_back(field::kCodeId, Value(code->id));
  fields.emplace_back(field::kReserved, Value(a->reserved));
  fields.emplace_back(field::kPurchased, Value(a->purchased));
  return Reply::success(std::move(fields));
}

int64_t LicenseService::sweep_interval_ms() const {
  return std::clamp<int64_t>((config_.check_interval_s + config_.grace_s) * 1000 / 20, 200, 60000);
}

int64_t LicenseService::sweep() {
  const int64_t now = now_ms_(), steady = steady_ms_();
  const int64_t window_ms = (config_.check_interval_s + config_.grace_s) * 1000;
  if (swept_) {
    const int64_t wall_delta = now - last_sweep_wall_ms_, steady_delta = steady - last_sweep_steady_ms_;
    const int64_t jump = wall_delta - steady_delta;
    last_sweep_wall_ms_ = now;
    last_sweep_steady_ms_ = steady;
    if (std::abs(jump) > config_.clock_jump_s * 1000) {
      spdlog::warn("sweep skipped: the wall clock moved {} s while the steady clock moved {} s", wall_delta / 1000,
                   steady_delta / 1000);
      if (jump > 0) {
        forgive_ms_ = now < forgive_until_ms_ ? forgive_ms_ + jump : jump;
        forgive_until_ms_ = now + window_ms;
      }
      auto out = redis_.eval(clock_jump_script(), {kClockJump, kEventStream},
                             {std::to_string(std::max<int64_t>(forgive_ms_, 0)), std::to_string(window_ms),
                              event::kServerClockJump, std::to_string(wall_delta / 1000),
                              std::to_string(steady_delta / 1000), std::to_string(config_.event_cap),
                              std::to_string(now)});
      if (const auto a = out ? count_and_events(*out) : std::nullopt)
        events_.publish_entries(*a->events);
      else
        spdlog::warn("could not log {}: {}", event::kServerClockJump, out ? out->str : out.error().message);
      return 0;
    }
  }
  swept_ = true;
  last_sweep_wall_ms_ = now;
  last_sweep_steady_ms_ = steady;
  // One sweep per interval across all workers: the lock is never renewed or
  // released, it expires. No Redis, no sweep.
  auto taken = ExpiringLock(redis_, kSweepLock, install_id_.empty() ? "w" : install_id_, sweep_interval_ms()).take();
  if (!taken || !*taken) return 0;
  // The silence forgiven after a jump: this worker's own record, or what
  // another worker recorded (for one that started after the jump).
  int64_t forgiven = now < forgive_until_ms_ ? forgive_ms_ : 0;
  if (auto rec = redis_.command({"GET", kClockJump}); rec && rec->is_str())
    forgiven = std::max<int64_t>(forgiven, std::atoll(rec->str.c_str()));
  const int64_t cutoff = now - window_ms - forgiven;
  int64_t total = 0;
  for (int round = 0; round < 10; ++round) {
    auto out = redis_.eval(sweep_script(), {kActive, kLost, kMeta, kEventStream},
                           {std::to_string(cutoff), std::to_string(config_.sweep_limit),
                            std::to_string(config_.event_cap), std::to_string(now)});
    const auto a = out ? count_and_events(*out) : std::nullopt;
    if (!a) break;
    events_.publish_entries(*a->events);
    const int64_t n = a->count;
    total += n;
    if (n < config_.sweep_limit) break;
  }
  if (total > 0) spdlog::info("sweep marked {} computers lost", total);
  return total;
}

}  // namespace primary
