#include "tools/bench/fleet.hpp"

#include <atomic>
#include <cstdio>

#include "common/schema.hpp"

namespace primary::bench {

namespace {

using namespace std::chrono_literals;

// splitmix64: spreads the request sequence over the fleet.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string reply_error(const Value& reply) {
  const Value* code = reply.find("code");
  const Value* message = reply.find("message");
  if (code && code->is_str())
    return code->as_str() + (message && message->is_str() ? ": " + message->as_str() : "");
  return to_json(reply);
}

}  // namespace

std::string computer_name(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "BENCH-%07lld", static_cast<long long>(i));
  return buf;
}

Result<std::string> make_vendor_key(const BenchEnv& env, TempDir& dir) {
  const std::string out = dir.file("vendor");
  if (!run_capture({env.bin("primary-vendor"), "keygen", "--out", out}, dir.file("vendor.log"), 30s))
    return Error{Code::Unavailable, "primary-vendor keygen failed:\n" + log_tail(dir.file("vendor.log"))};
  return out;
}

Result<int64_t> unlock(zmq::context_t& ctx, const BenchEnv& env, TempDir& dir,
                       const std::string& front, int64_t licenses) {
  auto reg = call(ctx, front, "license.control", "registration", {{"serial", Value("BENCH-SERIAL")}});
  if (!reg) return reg.error();
  const Value* code = reg->find("registration_code");
  if (!reply_ok(*reg) || !code || !code->is_str())
    return Error{Code::Unavailable, "registration refused: " + reply_error(*reg)};
  auto unlock_code = run_capture({env.bin("primary-vendor"), "unlock", "--key",
                                  dir.file("vendor/vendor.key"), "--registration", code->as_str(),
                                  "--licenses", std::to_string(licenses)},
                                 dir.file("vendor.log"), 30s);
  if (!unlock_code)
    return Error{Code::Unavailable, "primary-vendor unlock failed:\n" + log_tail(dir.file("vendor.log"))};
  auto r = call(ctx, front, "license.control", "unlock", {{"unlock_code", Value(*unlock_code)}});
  if (!r) return r.error();
  const Value* purchased = r->find("purchased");
  if (!reply_ok(*r) || !purchased || !purchased->is_int())
    return Error{Code::Unavailable, "unlock refused: " + reply_error(*r)};
  return purchased->as_int();
}

LoadResult Fleet::reserve(zmq::context_t& ctx, const std::string& front, int64_t first,
                          int64_t count, const LoadShape& shape, int64_t* created) {
  if (static_cast<int64_t>(licenses_.size()) < first + count)
    licenses_.resize(static_cast<size_t>(first + count));
  LoadOptions o;
  o.endpoint = front;
  o.service = "license.control";
  o.clients = shape.clients;
  o.window = shape.window;
  o.threads = shape.threads;
  o.total = count;
  std::atomic<int64_t> fresh{0};
  auto result = run_load(
      ctx, o,
      [first](int64_t seq, int64_t rid) {
        return encode_request("reserve", {{"computer", Value(computer_name(first + seq))}, {"rid", Value(rid)}});
      },
      [&, first](int64_t seq, const Value& reply, std::string& why) {
        const Value* license = reply.find("license");
        if (!reply_ok(reply) || !license || !license->is_str()) {
          why = "reserve " + computer_name(first + seq) + ": " + reply_error(reply);
          return false;
        }
        licenses_[static_cast<size_t>(first + seq)] = license->as_str();
        const Value* c = reply.find("created");
        if (c && c->is_bool() && c->as_bool()) fresh.fetch_add(1, std::memory_order_relaxed);
        return true;
      });
  if (created) *created = fresh.load();
  return result;
}

LoadResult Fleet::heartbeat(zmq::context_t& ctx, const std::string& front, int64_t population,
                            int seconds, const LoadShape& shape) const {
  LoadOptions o;
  o.warmup = 1s;
  o.duration = std::chrono::seconds(seconds);
  return heartbeats(ctx, front, o, shape, [population](int64_t seq) {
    return static_cast<int64_t>(mix(static_cast<uint64_t>(seq)) % static_cast<uint64_t>(population));
  });
}

LoadResult Fleet::heartbeat_each(zmq::context_t& ctx, const std::string& front, int64_t first,
                                 int64_t count, const LoadShape& shape) const {
  LoadOptions o;
  o.total = count;
  return heartbeats(ctx, front, o, shape, [first](int64_t seq) { return first + seq; });
}

LoadResult Fleet::heartbeats(zmq::context_t& ctx, const std::string& front, LoadOptions o,
                             const LoadShape& shape, const std::function<int64_t(int64_t)>& pick) const {
  o.endpoint = front;
  o.service = "license";
  o.clients = shape.clients;
  o.window = shape.window;
  o.threads = shape.threads;
  // Every reply is checked for ok and status "licensed" (one in 64, and any
  // that fails, decoded in full).
  o.quick = [](const TopFields& t) { return t.ok == true && t.status == "licensed"; };
  return run_load(
      ctx, o,
      [this, pick](int64_t seq, int64_t rid) {
        const int64_t i = pick(seq);
        return encode_request("heartbeat", {{"computer", Value(computer_name(i))},
                                            {"license", Value(licenses_[static_cast<size_t>(i)])},
                                            {"rid", Value(rid)}});
      },
      [pick](int64_t seq, const Value& reply, std::string& why) {
        const Value* status = reply.find("status");
        if (reply_ok(reply) && status && status->is_str() && status->as_str() == "licensed") return true;
        const Value* reason = reply.find("reason");
        why = "heartbeat " + computer_name(pick(seq)) + ": " +
              (status && status->is_str() ? status->as_str() + " " + (reason ? to_json(*reason) : "")
                                          : reply_error(reply));
        return false;
      });
}

}  // namespace primary::bench
