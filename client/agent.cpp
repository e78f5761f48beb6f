#include "primary/client/agent.hpp"

#include <algorithm>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/mdp.hpp"
#include "common/schema.hpp"
#include "common/value.hpp"

namespace primary::client {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyDuration = std::chrono::steady_clock::duration;

// The server's limits on one heartbeat's `results` (docs/protocol.md): an
// entry beyond them would make the whole heartbeat BAD_REQUEST.
constexpr size_t kMaxResults = 1000;
constexpr size_t kMaxDetail = 1024;
constexpr size_t kMaxId = 64;
// What the agent accepts as a server-given interval.
constexpr int64_t kMinIntervalS = 1, kMaxIntervalS = 7 * 86400;

const Value* field(const Value& m, std::string_view key) {
  const Value* v = m.find(key);
  return v && !v->is_nil() ? v : nullptr;
}
std::optional<int64_t> int_field(const Value& m, std::string_view key) {
  const Value* v = field(m, key);
  if (v && v->is_int()) return v->as_int();
  return std::nullopt;
}

// At most `max` bytes of valid UTF-8: invalid bytes become '?', and a
// character that would not fit whole is dropped.
std::string clean_utf8(std::string_view s, size_t max) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool valid = len > 0 && i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k)
      valid = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (valid && len > 1) {
      // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
      uint32_t cp = c & (0xFF >> (len + 1));
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      const uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
      valid = cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    const std::string_view piece = valid ? s.substr(i, len) : std::string_view("?");
    if (out.size() + piece.size() > max) break;
    out += piece;
    i += valid ? len : 1;
  }
  return out;
}

int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<seconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string_view to_string(LicenseState s) {
  switch (s) {
    case LicenseState::unlicensed: return status::kUnlicensed;
    case LicenseState::licensed: return status::kLicensed;
    case LicenseState::lost: return "lost";
  }
  return "?";
}

AgentOptions options_from(const SetupInfo& setup) {
  AgentOptions o;
  o.computer = setup.computer;
  o.license = setup.license;
  o.endpoints = setup.endpoints;
  o.lease_key = setup.lease_key;
  if (!setup.lease_keys.empty()) {
    o.lease_key.clear();
    for (const std::string& k : setup.lease_keys) o.lease_key += (o.lease_key.empty() ? "" : ",") + k;
  }
  o.server_key = setup.server_key;
  return o;
}

// What one contact came to.
struct LicenseAgent::Outcome {
  enum Kind { NoReply, ErrorReply, Licensed, Unlicensed } kind = NoReply;
  std::string reason;         // NoReply/ErrorReply: what went wrong; Unlicensed: the server's reason
  Value reply;                // Licensed/Unlicensed: the reply map
  std::optional<int64_t> retry_after_s;
  size_t endpoint = 0;        // the endpoint to try first next time
  size_t results_sent = 0;
  // Licensed/Unlicensed: when the answered request went out and its reply
  // came back (clock->now() time base).
  std::chrono::steady_clock::time_point sent_at, received_at;
};

LicenseAgent::LicenseAgent(AgentOptions options, std::shared_ptr<Transport> transport,
                           std::shared_ptr<Clock> clock)
    : options_(std::move(options)), transport_(std::move(transport)), clock_(std::move(clock)) {
  if (!clock_) clock_ = system_clock();
  if (!transport_) transport_ = zmq_transport({options_.server_key, {}, {}});
  if (options_.endpoints.empty()) options_.endpoints.push_back("tcp://127.0.0.1:16770");
  if (valid_computer_name(options_.computer)) options_.computer = normalize_computer_name(options_.computer);
  options_.jitter = std::clamp(options_.jitter, 0.0, 0.5);
  if (!(options_.time_scale > 0)) options_.time_scale = 1.0;
  rng_.seed(options_.seed ? options_.seed : std::random_device{}());
  next_ = clock_->now() + options_.first_contact_delay;
}

LicenseAgent::~LicenseAgent() = default;

SteadyDuration LicenseAgent::interval(seconds base) {
  double factor = options_.time_scale;
  if (options_.jitter > 0)
    factor *= std::uniform_real_distribution<double>(1 - options_.jitter, 1 + options_.jitter)(rng_);
  const double ms = static_cast<double>(milliseconds(base).count()) * factor;
  return std::chrono::duration_cast<SteadyDuration>(std::chrono::duration<double, std::milli>(ms));
}

LicenseAgent::Outcome LicenseAgent::contact(const std::string& body) {
  const size_t n = options_.endpoints.size();
  const int attempts = options_.attempts > 0 ? options_.attempts : static_cast<int>(std::max<size_t>(3, 2 * n));
  size_t at;
  {
    std::lock_guard lock(mu_);
    at = current_;
  }
  Outcome out;
  std::string last_error;
  // Endpoints not to try again in this contact: their connection never
  // reached a server, and another attempt would only be another connection
  // attempt to nobody.
  std::vector<bool> unreached(n, false);
  size_t reachable = n;
  int made = 0;
  for (int attempt = 0; attempt < attempts && reachable > 0; ++attempt, at = (at + 1) % n) {
    while (unreached[at]) at = (at + 1) % n;
    const std::string& ep = options_.endpoints[at];
    ++made;
    // Lazy Pirate: every attempt on a fresh connection, so a late reply to
    // an abandoned attempt can never be taken for the answer to this one.
    auto conn = transport_->connect(ep);
    if (!conn) {
      last_error = conn.error();
      unreached[at] = true;
      --reachable;
      continue;
    }
    const auto sent_at = clock_->now();
    if (!(*conn)->send(mdp::request_frames(svc::kLicense, body))) {
      last_error = "cannot send to " + ep;
      // Already gone without having reached a server (refused at once, or
      // closed by whatever listens there): not worth another attempt.
      if (!(*conn)->reached()) {
        last_error += " (no connection)";
        unreached[at] = true;
        --reachable;
      }
      continue;
    }
    auto frames = (*conn)->receive(options_.timeout);
    if (!frames) {
      last_error = "no reply from " + ep + " within " + std::to_string(options_.timeout.count()) + " ms";
      if (!(*conn)->reached()) {
        last_error += " (no connection)";
        unreached[at] = true;
        --reachable;
      }
      continue;
    }
    const auto body_in = mdp::reply_body(*frames, svc::kLicense);
    if (!body_in) {
      last_error = "malformed MDP reply from " + ep;
      continue;
    }
    auto reply = unpack_map(*body_in);
    if (!reply) {
      last_error = "undecodable reply from " + ep + ": " + reply.error().message;
      continue;
    }
    if (!reply_ok(*reply)) {
      const std::string code = reply_str(*reply, field::kCode);
      last_error = (code.empty() ? "ERROR" : code) + " from " + ep + ": " + reply_str(*reply, field::kMessage);
      // No worker behind this broker: another broker of the list may have one.
      if (code == "UNAVAILABLE" && n > 1 && attempt + 1 < attempts) continue;
      out.kind = Outcome::ErrorReply;
      out.reason = last_error;
      out.retry_after_s = int_field(*reply, field::kRetryAfterS);
      out.endpoint = at;
      return out;
    }
    const std::string status = reply_str(*reply, field::kStatus);
    if (status != status::kLicensed && status != status::kUnlicensed) {
      last_error = "reply from " + ep + " without a valid status";
      continue;
    }
    out.kind = status == status::kLicensed ? Outcome::Licensed : Outcome::Unlicensed;
    out.reason = reply_str(*reply, field::kReason);
    out.reply = std::move(*reply);
    out.endpoint = at;
    out.sent_at = sent_at;
    out.received_at = clock_->now();
    return out;
  }
  out.kind = Outcome::NoReply;
  out.reason = last_error + (made > 1 ? " (" + std::to_string(made) + " attempts)" : "");
  out.endpoint = at;  // where the next round of attempts begins
  return out;
}

bool LicenseAgent::step() {
  const auto started = clock_->now();
  std::string body;
  size_t sending = 0;
  {
    std::lock_guard lock(mu_);
    if (started < next_) return false;
    Value::Map fields{{field::kComputer, Value(options_.computer)}, {field::kLicense, Value(options_.license)}};
    if (!options_.version.empty()) fields.emplace_back(field::kVersion, Value(options_.version));
    fields.emplace_back(field::kClientTime, Value(unix_seconds(clock_->wall())));
    if (!results_.empty()) {
      Value::Array results;
      sending = std::min(results_.size(), kMaxResults);
      for (size_t i = 0; i < sending; ++i) {
        Value::Map r{{field::kId, Value(results_[i].id)}, {field::kOk, Value(results_[i].result.ok)}};
        if (!results_[i].result.detail.empty())
          r.emplace_back(field::kDetail, Value(clean_utf8(results_[i].result.detail, kMaxDetail)));
        results.emplace_back(std::move(r));
      }
      fields.emplace_back(field::kResults, Value(std::move(results)));
    }
    body = encode_request(opname::kHeartbeat, std::move(fields));
  }
  Outcome outcome = contact(body);
  outcome.results_sent = sending;
  finish(outcome, started);
  return true;
}

void LicenseAgent::finish(const Outcome& o, std::chrono::steady_clock::time_point started) {
  std::vector<Command> commands;
  std::optional<StateChange> change;
  {
    std::lock_guard lock(mu_);
    const LicenseState old = state_;
    current_ = o.endpoint;
    auto server_interval = [&](std::optional<int64_t> s, seconds def) {
      if (!s || *s <= 0) return def;
      return seconds(std::clamp(*s, kMinIntervalS, kMaxIntervalS));
    };
    SteadyDuration wait{};
    switch (o.kind) {
      case Outcome::Licensed: {
        state_ = LicenseState::licensed;
        // The server's clock as of the reply's arrival: its `server_time`
        // plus half the round trip. Without one (an older server), the
        // agent's own wall clock stands in.
        if (auto server_s = int_field(o.reply, field::kServerTime)) {
          const auto half_trip = (o.received_at - o.sent_at) / 2;
          server_ref_ = ServerRef{o.received_at, std::chrono::milliseconds(*server_s * 1000) +
                                                     std::chrono::duration_cast<milliseconds>(half_trip)};
        } else {
          server_ref_.reset();
        }
        const int64_t server_s = server_now_s();
        const Value* upload = field(o.reply, field::kUpload);
        upload_ = upload && upload->is_bool() && upload->as_bool();
        const std::string token = reply_str(o.reply, field::kLease);
        reason_ = "verified";
        lease_.reset();
        if (token.empty()) {
          reason_ += "; no lease";
        } else if (options_.lease_key.empty()) {
          // Nothing to check it with: trust the server's word on expiry.
          if (auto expires = int_field(o.reply, field::kLeaseExpires)) {
            lease_ = LeaseInfo{options_.computer, options_.license, {}, 0, *expires, token};
            reason_ += "; lease not checked (no lease key)";
          } else {
            reason_ += "; lease without expiry ignored";
          }
        } else {
          // A server whose lease key was rotated sends its key set with
          // every licensed reply (over the same authenticated connection
          // as the lease): the agent verifies by that set and the one it
          // was set up with, so a rotation it slept through costs nothing.
          if (const Value* keys = field(o.reply, field::kLeaseKeys); keys && keys->is_array()) {
            learned_keys_.clear();
            for (const Value& k : keys->as_array())
              if (k.is_str() && !k.as_str().empty() && k.as_str().find(',') == std::string::npos)
                learned_keys_ += "," + k.as_str();
          }
          // (A raw 32-byte key is written out as text to join a set.)
          const std::string own = options_.lease_key.size() == 32 && !learned_keys_.empty()
                                      ? base64url_encode(options_.lease_key)
                                      : options_.lease_key;
          auto lease = verify_lease(token, own + learned_keys_, server_s, 0);  // server time: no tolerance
          if (!lease)
            reason_ += "; lease refused: " + lease.error();
          else if (lease->computer != options_.computer || lease->license != options_.license)
            reason_ += "; lease refused: it is for " + lease->computer + " and another license";
          else
            lease_ = std::move(*lease);
        }
        results_.erase(results_.begin(), results_.begin() + static_cast<std::ptrdiff_t>(
                                                                std::min(o.results_sent, results_.size())));
        if (const Value* cmds = field(o.reply, field::kCommands); cmds && cmds->is_array()) {
          for (const Value& c : cmds->as_array()) {
            if (!c.is_map()) continue;
            Command cmd;
            cmd.id = reply_str(c, field::kId);
            cmd.command = reply_str(c, field::kCommand);
            const Value* args = field(c, field::kArgs);
            cmd.args_json = args ? to_json(*args) : "null";
            cmd.queued_ms = int_field(c, "queued").value_or(0);
            if (cmd.id.empty() || cmd.id.size() > kMaxId) continue;  // could never be reported
            commands.push_back(std::move(cmd));
          }
        }
        wait = interval(server_interval(int_field(o.reply, field::kNextCheckS), options_.licensed_interval));
        break;
      }
      case Outcome::Unlicensed:
        // Verification refused or withdrawn: no lease, no recording.
        state_ = LicenseState::unlicensed;
        reason_ = o.reason.empty() ? status::kUnlicensed : o.reason;
        lease_.reset();
        upload_ = false;
        wait = interval(server_interval(int_field(o.reply, field::kNextCheckS), options_.unlicensed_interval));
        break;
      case Outcome::NoReply:
      case Outcome::ErrorReply:
        if (state_ != LicenseState::unlicensed) state_ = LicenseState::lost;
        reason_ = o.reason;
        wait = interval(server_interval(o.retry_after_s, state_ == LicenseState::lost
                                                             ? options_.lost_interval
                                                             : options_.unlicensed_interval));
        break;
    }
    next_ = started + wait;
    if (old != state_) {
      const std::string off = upload_off_locked();
      change = StateChange{clock_->wall(), options_.computer, old, state_, reason_, off.empty(), off};
    }
  }
  if (change && options_.on_state_change) options_.on_state_change(*change);
  for (const Command& cmd : commands) {
    std::optional<CommandResult> result =
        options_.on_command ? options_.on_command(cmd) : CommandResult{false, "no command handler"};
    if (result) report(cmd.id, std::move(*result));
  }
}

void LicenseAgent::report(const std::string& id, CommandResult result) {
  std::lock_guard lock(mu_);
  results_.push_back({clean_utf8(id, kMaxId), std::move(result)});
}

std::chrono::steady_clock::time_point LicenseAgent::next_wakeup() const {
  std::lock_guard lock(mu_);
  return next_;
}

void LicenseAgent::run(std::stop_token stop) {
  while (!stop.stop_requested()) {
    step();
    sleep_until_due(stop, nullptr);
  }
}

void LicenseAgent::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    step();
    sleep_until_due({}, &stop);
  }
}

void LicenseAgent::sleep_until_due(const std::stop_token& stop, const std::atomic<bool>* flag) {
  // The schedule is in the clock's time base; the wait is in real time.
  const auto wait = std::min<SteadyDuration>(next_wakeup() - clock_->now(), std::chrono::hours(24 * 366));
  const auto due = std::chrono::steady_clock::now() + wait;
  std::unique_lock lock(wake_mu_);
  const auto woken = [&] { return woken_ || (flag && flag->load()); };
  if (stop.stop_possible())
    wake_cv_.wait_until(lock, stop, due, woken);
  else
    wake_cv_.wait_until(lock, due, woken);
  woken_ = false;
}

void LicenseAgent::wake() {
  {
    std::lock_guard lock(mu_);
    next_ = std::min(next_, clock_->now());
  }
  {
    std::lock_guard lock(wake_mu_);
    woken_ = true;
  }
  wake_cv_.notify_all();
  if (options_.on_wake) options_.on_wake();
}

LicenseState LicenseAgent::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

bool LicenseAgent::can_record() const {
  std::lock_guard lock(mu_);
  return state_ != LicenseState::unlicensed;
}

bool LicenseAgent::can_upload() const {
  std::lock_guard lock(mu_);
  return upload_off_locked().empty();
}

std::string LicenseAgent::upload_off() const {
  std::lock_guard lock(mu_);
  return upload_off_locked();
}

std::string LicenseAgent::upload_off_locked() const {
  if (state_ == LicenseState::unlicensed) return "unlicensed";
  if (!upload_) return "server said no upload";
  if (!lease_) return "no valid lease";
  if (server_now_s() >= lease_->expires) return "lease expired";
  return {};
}

int64_t LicenseAgent::server_now_s() const {
  if (!server_ref_) return unix_seconds(clock_->wall());
  const auto since = std::chrono::duration_cast<milliseconds>(clock_->now() - server_ref_->steady);
  return std::chrono::duration_cast<seconds>(server_ref_->server + since).count();
}

std::optional<int64_t> LicenseAgent::server_time() const {
  std::lock_guard lock(mu_);
  if (!server_ref_) return std::nullopt;
  return server_now_s();
}

std::optional<LeaseInfo> LicenseAgent::lease() const {
  std::lock_guard lock(mu_);
  return lease_;
}

std::string LicenseAgent::reason() const {
  std::lock_guard lock(mu_);
  return reason_;
}

std::string LicenseAgent::endpoint() const {
  std::lock_guard lock(mu_);
  return options_.endpoints[current_];
}

}  // namespace primary::client
