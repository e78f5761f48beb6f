// A synchronous Redis client over hiredis: the one path by which workers
// reach the source of truth.
//
// A Redis object owns at most one connection and makes it lazily. Before each
// call it checks that the idle connection has not been closed by the server
// (a restart, an idle timeout) and reconnects if so; after a reconnect it
// sends AUTH and SELECT. Any I/O error, EOF or timeout while a command is in
// flight drops the connection and returns Code::Unavailable; the command is
// never re-sent, because it may have executed. The next call reconnects.
//
// Replies are plain values (RedisReply). A Redis error reply such as WRONGTYPE
// is a successful Result holding a reply of type Error: the server answered.
// A failed Result means there was no answer: Unavailable (connection, AUTH,
// SELECT, timeout) or BadRequest (an empty command).
//
// Lua scripts run with EVALSHA. A script is loaded (SCRIPT LOAD) once per
// connection, in the same round trip as its first call, so a restarted Redis
// with an empty script cache costs nothing extra. If the cache is flushed
// under a live connection, the NOSCRIPT reply is answered by loading the
// script and re-sending just that EVALSHA (NOSCRIPT means it did not run).
//
// Not thread-safe: use one Redis object per thread. No global state, except
// that SIGPIPE is blocked in the calling thread while a call is in progress.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/errors.hpp"

struct redisContext;

namespace primary {

// Where a Redis lives and how to log in; built by parse_redis_url.
struct RedisUrl {
  enum class Kind { Tcp, Unix };
  Kind kind = Kind::Tcp;
  std::string host;      // Tcp: name or address, IPv6 without brackets
  int port = 6379;       // Tcp
  std::string path;      // Unix: absolute socket path
  int db = 0;
  std::string user;      // empty: AUTH with the password alone
  std::string password;  // empty: no AUTH
};

// Parses redis://[[user]:password@]host[:port][/db] or
// unix://[[user]:password@]/abs/path[?db=N][&password=P][&user=U];
// user and password are percent-decoded. Bad input -> Code::BadRequest.
Result<RedisUrl> parse_redis_url(std::string_view url);

// The URL in canonical form with the password masked, for logs.
std::string redacted(const RedisUrl& url);

struct RedisReply {
  enum class Type { Nil, Int, Str, Status, Error, Array };
  Type type = Type::Nil;
  int64_t integer = 0;               // Int
  std::string str;                   // Str, Status, Error (message text)
  std::vector<RedisReply> elements;  // Array

  bool is_nil() const { return type == Type::Nil; }
  bool is_int() const { return type == Type::Int; }
  bool is_str() const { return type == Type::Str; }
  bool is_status() const { return type == Type::Status; }
  bool is_error() const { return type == Type::Error; }
  bool is_array() const { return type == Type::Array; }
  // True for a Status reply with this text, e.g. is_status("OK").
  bool is_status(std::string_view text) const { return is_status() && str == text; }
};

// True for an error reply that means "not now" rather than "never": a Redis
// still loading its data, busy with a script, without its master or unable
// to write (LOADING, BUSY, MASTERDOWN, READONLY, NOREPLICAS, TRYAGAIN,
// CLUSTERDOWN). Callers answer UNAVAILABLE for these, INTERNAL for others.
bool transient_error(const RedisReply& reply);

// A Lua script and its SHA-1, computed locally once.
class Script {
 public:
  explicit Script(std::string source);
  const std::string& source() const { return source_; }
  const std::string& sha() const { return sha_; }  // 40 lowercase hex digits

 private:
  std::string source_;
  std::string sha_;
};

struct RedisOptions {
  int connect_timeout_ms = 1000;
  int command_timeout_ms = 2000;  // per read or write, not per call
};

class Redis {
 public:
  using Argv = std::vector<std::string>;

  // Does not connect; the first call does.
  explicit Redis(RedisUrl url, RedisOptions options = {});
  ~Redis();
  Redis(Redis&&) noexcept;
  Redis& operator=(Redis&&) noexcept;
  Redis(const Redis&) = delete;
  Redis& operator=(const Redis&) = delete;

  // Sends one command (binary-safe arguments) and returns its reply.
  Result<RedisReply> command(std::initializer_list<std::string_view> argv);
  Result<RedisReply> command(const Argv& argv);

  // Sends all commands in one round trip; replies in the same order. A script
  // call built by script_call() that gets NOSCRIPT is loaded and re-sent, so
  // it then runs after the other commands of the pipeline.
  Result<std::vector<RedisReply>> pipeline(const std::vector<Argv>& commands);

  // Runs a script with EVALSHA, loading it when Redis does not know it.
  Result<RedisReply> eval(const Script& script, const Argv& keys, const Argv& args);

  // The EVALSHA argv for a script call, for use in pipeline(); remembers the
  // script so that pipeline() can load it.
  Argv script_call(const Script& script, const Argv& keys, const Argv& args);

  // True when the server answers PING with PONG.
  bool ping();

  // Whether a connection is currently open (it may still turn out dead).
  bool connected() const { return ctx_ != nullptr; }
  // Closes the connection; the next call reconnects.
  void disconnect();

  const RedisUrl& url() const { return url_; }

 private:
  struct ContextFree {
    void operator()(redisContext* c) const;
  };
  using Context = std::unique_ptr<redisContext, ContextFree>;

  std::optional<Error> ensure_connected();
  std::optional<Error> connect();
  Result<std::vector<RedisReply>> exchange(const std::vector<Argv>& commands);
  Error io_error(std::string_view during);

  RedisUrl url_;
  RedisOptions options_;
  Context ctx_;
  std::unordered_map<std::string, std::string> scripts_;  // sha -> source
  std::unordered_set<std::string> loaded_;                // shas loaded on ctx_
};

}  // namespace primary
