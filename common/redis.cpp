#include "common/redis.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <iterator>

namespace primary {

namespace {

// The message never quotes the URL: it may hold a password.
Error bad_url(std::string_view why) {
  return Error{Code::BadRequest, "bad redis URL: " + std::string(why)};
}

std::optional<int> parse_int(std::string_view s, int min, int max) {
  int v = 0;
  if (s.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) return std::nullopt;
  return v;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// Splits "[user]:password" into url->user and url->password.
std::optional<Error> parse_userinfo(std::string_view info, RedisUrl* url) {
  size_t colon = info.find(':');
  if (colon == std::string_view::npos)
    return bad_url("credentials must be [user]:password@");
  auto user = percent_decode(info.substr(0, colon));
  auto password = percent_decode(info.substr(colon + 1));
  if (!user || !password) return bad_url("bad percent-escape in credentials");
  url->user = std::move(*user);
  url->password = std::move(*password);
  return std::nullopt;
}

Result<RedisUrl> parse_tcp(std::string_view rest) {
  RedisUrl url;
  url.kind = RedisUrl::Kind::Tcp;
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    if (auto e = parse_userinfo(rest.substr(0, at), &url)) return *e;
    rest.remove_prefix(at + 1);
  }
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);

  std::string_view port;
  if (!hostport.empty() && hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return bad_url("unterminated [IPv6] host");
    url.host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad_url("expected :port after ]");
      port = after.substr(1);
      if (port.empty()) return bad_url("empty port");
    }
  } else {
    size_t colon = hostport.find(':');
    url.host = hostport.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = hostport.substr(colon + 1);
      if (port.find(':') != std::string_view::npos)
        return bad_url("an IPv6 host must be written in [brackets]");
      if (port.empty()) return bad_url("empty port");
    }
  }
  if (url.host.empty()) return bad_url("missing host");
  if (url.host.find_first_of("@/?#[] ") != std::string::npos) return bad_url("bad host");
  if (!port.empty()) {
    auto p = parse_int(port, 1, 65535);
    if (!p) return bad_url("port must be 1..65535");
    url.port = *p;
  }
  if (!path.empty()) {
    auto db = parse_int(path, 0, 1 << 20);
    if (!db) return bad_url("path must be /<db number>");
    url.db = *db;
  }
  return url;
}

Result<RedisUrl> parse_unix(std::string_view rest) {
  RedisUrl url;
  url.kind = RedisUrl::Kind::Unix;
  if (!rest.empty() && rest.front() != '/') {
    size_t at = rest.find("@/");
    if (at == std::string_view::npos) return bad_url("unix socket path must be absolute");
    if (auto e = parse_userinfo(rest.substr(0, at), &url)) return *e;
    rest.remove_prefix(at + 1);
  }
  size_t q = rest.find('?');
  url.path = rest.substr(0, q);
  if (url.path.size() < 2 || url.path.front() != '/')
    return bad_url("unix socket path must be absolute");
  if (q == std::string_view::npos) return url;

  std::string_view query = rest.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) return bad_url("query parameters must be name=value");
    std::string_view name = pair.substr(0, eq);
    auto value = percent_decode(pair.substr(eq + 1));
    if (!value) return bad_url("bad percent-escape in query");
    if (name == "db") {
      auto db = parse_int(*value, 0, 1 << 20);
      if (!db) return bad_url("db must be a number >= 0");
      url.db = *db;
    } else if (name == "password") {
      url.password = std::move(*value);
    } else if (name == "user") {
      url.user = std::move(*value);
    } else {
      return bad_url("unknown query parameter '" + std::string(name) + "' (db, password, user)");
    }
  }
  return url;
}

// Minimal SHA-1 (FIPS 180-4), only to name Lua scripts the way Redis does.
std::string sha1_hex(std::string_view data) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  auto rol = [](uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  std::string msg(data);
  uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  msg += static_cast<char>(0x80);
  while (msg.size() % 64 != 56) msg += '\0';
  for (int i = 7; i >= 0; --i) msg += static_cast<char>((bits >> (i * 8)) & 0xff);
  for (size_t off = 0; off < msg.size(); off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const unsigned char*>(msg.data() + off + i * 4);
      w[i] = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    }
    for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d), k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d, k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d, k = 0xCA62C1D6;
      }
      uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  char out[41];
  for (int i = 0; i < 5; ++i) std::snprintf(out + i * 8, 9, "%08x", h[i]);
  return std::string(out, 40);
}

RedisReply convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::Int;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::Str;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::Status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::Error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::Array;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::Nil;
  }
  return out;
}

timeval to_timeval(int ms) {
  if (ms < 1) ms = 1;
  return timeval{ms / 1000, (ms % 1000) * 1000};
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  return true;
}

bool is_noscript(const RedisReply& r) {
  return r.is_error() && r.str.compare(0, 8, "NOSCRIPT") == 0;
}

// Blocks SIGPIPE in this thread while hiredis writes to a socket the server
// may have closed, and swallows a SIGPIPE raised meanwhile: a dead Redis is
// an expected failure, not a reason for the process to die.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeBlock() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{0, 0};
        sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
};

}  // namespace

Result<RedisUrl> parse_redis_url(std::string_view url) {
  constexpr std::string_view tcp = "redis://", unix_scheme = "unix://";
  if (url.substr(0, tcp.size()) == tcp) return parse_tcp(url.substr(tcp.size()));
  if (url.substr(0, unix_scheme.size()) == unix_scheme)
    return parse_unix(url.substr(unix_scheme.size()));
  return bad_url("expected redis://host:port/db or unix:///path?db=N");
}

std::string redacted(const RedisUrl& url) {
  bool creds = !url.user.empty() || !url.password.empty();
  if (url.kind == RedisUrl::Kind::Unix) {
    std::string s = "unix://" + url.path + "?db=" + std::to_string(url.db);
    if (!url.user.empty()) s += "&user=" + url.user;
    if (!url.password.empty()) s += "&password=***";
    return s;
  }
  std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  return "redis://" + (creds ? url.user + ":***@" : std::string()) + host + ":" +
         std::to_string(url.port) + "/" + std::to_string(url.db);
}

bool transient_error(const RedisReply& reply) {
  if (!reply.is_error()) return false;
  for (std::string_view prefix : {"LOADING", "BUSY", "MASTERDOWN", "READONLY", "NOREPLICAS",
                                  "TRYAGAIN", "CLUSTERDOWN"})
    if (std::string_view(reply.str).substr(0, prefix.size()) == prefix) return true;
  return false;
}

Script::Script(std::string source) : source_(std::move(source)), sha_(sha1_hex(source_)) {}

void Redis::ContextFree::operator()(redisContext* c) const { redisFree(c); }

Redis::Redis(RedisUrl url, RedisOptions options) : url_(std::move(url)), options_(options) {}
Redis::~Redis() = default;
Redis::Redis(Redis&&) noexcept = default;
Redis& Redis::operator=(Redis&&) noexcept = default;

void Redis::disconnect() {
  ctx_.reset();
  loaded_.clear();
}

Error Redis::io_error(std::string_view during) {
  std::string why = ctx_ && ctx_->errstr[0] ? ctx_->errstr : "connection lost";
  if (ctx_ && ctx_->err == REDIS_ERR_EOF) why = "server closed the connection";
  if (ctx_ && ctx_->err == REDIS_ERR_IO && std::strcmp(ctx_->errstr, std::strerror(EAGAIN)) == 0)
    why = "no reply within " + std::to_string(options_.command_timeout_ms) + " ms";
  disconnect();
  return Error{Code::Unavailable,
               "redis " + redacted(url_) + ": " + why + " (" + std::string(during) + ")"};
}

std::optional<Error> Redis::connect() {
  disconnect();
  timeval tv = to_timeval(options_.connect_timeout_ms);
  redisContext* c = url_.kind == RedisUrl::Kind::Unix
                        ? redisConnectUnixWithTimeout(url_.path.c_str(), tv)
                        : redisConnectWithTimeout(url_.host.c_str(), url_.port, tv);
  if (c == nullptr) return Error{Code::Unavailable, "redis: out of memory"};
  ctx_.reset(c);
  if (c->err) return io_error("connect");
  if (redisSetTimeout(c, to_timeval(options_.command_timeout_ms)) != REDIS_OK)
    return io_error("set timeout");
  if (url_.kind == RedisUrl::Kind::Tcp) redisEnableKeepAlive(c);

  std::vector<Argv> hello;
  if (!url_.password.empty() || !url_.user.empty()) {
    if (url_.user.empty())
      hello.push_back({"AUTH", url_.password});
    else
      hello.push_back({"AUTH", url_.user, url_.password});
  }
  if (url_.db != 0) hello.push_back({"SELECT", std::to_string(url_.db)});
  if (hello.empty()) return std::nullopt;
  auto replies = exchange(hello);
  if (!replies) return replies.error();
  for (size_t i = 0; i < hello.size(); ++i) {
    if ((*replies)[i].is_error()) {
      disconnect();
      return Error{Code::Unavailable, "redis " + redacted(url_) + ": " + hello[i][0] +
                                          " refused: " + (*replies)[i].str};
    }
  }
  return std::nullopt;
}

std::optional<Error> Redis::ensure_connected() {
  if (ctx_) {
    // An idle connection has nothing to read; readable means EOF or an error
    // (e.g. Redis restarted), so reconnect rather than send into a dead socket.
    pollfd p{ctx_->fd, POLLIN, 0};
    if (poll(&p, 1, 0) != 0) disconnect();
  }
  if (!ctx_) return connect();
  return std::nullopt;
}

Result<std::vector<RedisReply>> Redis::exchange(const std::vector<Argv>& commands) {
  SigpipeBlock no_sigpipe;
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const Argv& cmd : commands) {
    argv.clear();
    lens.clear();
    for (const std::string& a : cmd) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(ctx_.get(), static_cast<int>(cmd.size()), argv.data(),
                               lens.data()) != REDIS_OK)
      return io_error("append");
  }
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_.get(), &raw) != REDIS_OK || raw == nullptr)
      return io_error(commands[i][0]);
    replies.push_back(convert(static_cast<redisReply*>(raw)));
    freeReplyObject(raw);
  }
  return replies;
}

Result<RedisReply> Redis::command(std::initializer_list<std::string_view> argv) {
  return command(Argv(argv.begin(), argv.end()));
}

Result<RedisReply> Redis::command(const Argv& argv) {
  if (argv.empty()) return Error{Code::BadRequest, "redis: empty command"};
  if (auto e = ensure_connected()) return *e;
  auto replies = exchange({argv});
  if (!replies) return replies.error();
  return std::move(replies->front());
}

Result<std::vector<RedisReply>> Redis::pipeline(const std::vector<Argv>& commands) {
  for (const Argv& cmd : commands)
    if (cmd.empty()) return Error{Code::BadRequest, "redis: empty command in pipeline"};
  if (commands.empty()) return std::vector<RedisReply>{};
  if (auto e = ensure_connected()) return *e;

  // The known scripts this connection has not loaded yet go first.
  auto script_of = [&](const Argv& cmd) -> const std::string* {
    if (cmd.size() < 2 || !iequals(cmd[0], "EVALSHA")) return nullptr;
    auto it = scripts_.find(cmd[1]);
    return it == scripts_.end() ? nullptr : &it->first;
  };
  std::vector<std::string> preload;
  for (const Argv& cmd : commands) {
    const std::string* sha = script_of(cmd);
    if (sha && !loaded_.count(*sha) &&
        std::find(preload.begin(), preload.end(), *sha) == preload.end())
      preload.push_back(*sha);
  }
  std::vector<Argv> batch;
  batch.reserve(preload.size() + commands.size());
  for (const std::string& sha : preload) batch.push_back({"SCRIPT", "LOAD", scripts_[sha]});
  batch.insert(batch.end(), commands.begin(), commands.end());
  auto sent = exchange(batch);
  if (!sent) return sent.error();
  for (size_t i = 0; i < preload.size(); ++i)
    if (!(*sent)[i].is_error()) loaded_.insert(preload[i]);
  std::vector<RedisReply> replies(std::make_move_iterator(sent->begin() + preload.size()),
                                  std::make_move_iterator(sent->end()));

  // NOSCRIPT: the cache was flushed under us; the call did not run, so load
  // the script and send that call again (once).
  std::vector<size_t> again;
  std::vector<std::string> reload;
  for (size_t i = 0; i < commands.size(); ++i) {
    const std::string* sha = script_of(commands[i]);
    if (!sha || !is_noscript(replies[i])) continue;
    again.push_back(i);
    if (std::find(reload.begin(), reload.end(), *sha) == reload.end()) reload.push_back(*sha);
  }
  if (again.empty()) return replies;
  batch.clear();
  for (const std::string& sha : reload) batch.push_back({"SCRIPT", "LOAD", scripts_[sha]});
  for (size_t i : again) batch.push_back(commands[i]);
  if (auto e = ensure_connected()) return *e;
  auto retried = exchange(batch);
  if (!retried) return retried.error();
  for (size_t i = 0; i < reload.size(); ++i)
    if (!(*retried)[i].is_error()) loaded_.insert(reload[i]);
  for (size_t j = 0; j < again.size(); ++j)
    replies[again[j]] = std::move((*retried)[reload.size() + j]);
  return replies;
}

Redis::Argv Redis::script_call(const Script& script, const Argv& keys, const Argv& args) {
  scripts_.try_emplace(script.sha(), script.source());
  Argv argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha());
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

Result<RedisReply> Redis::eval(const Script& script, const Argv& keys, const Argv& args) {
  auto replies = pipeline({script_call(script, keys, args)});
  if (!replies) return replies.error();
  return std::move(replies->front());
}

bool Redis::ping() {
  auto r = command({"PING"});
  return r && r->is_status("PONG");
}

}  // namespace primary
