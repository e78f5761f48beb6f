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
// With a sentinel:// URL the master is found the way the Sentinel client
// guidelines say: each Sentinel in turn (a short timeout each) is asked
// SENTINEL get-master-addr-by-name, the one that answered moves to the front
// of the list, and the address it gave must answer ROLE with "master", else
// the connection is refused and the next call asks again. Every reconnect
// asks again, and a reply that says this node cannot serve writes now
// (READONLY, LOADING, MASTERDOWN) closes the connection, so the next call
// finds the current master. A pipelined command refused with READONLY did
// not run: it is re-sent once on the new connection.
//
// Replicated writes (pipeline_replicated): after the writes, WAIT until the
// configured number of replicas has them, so that an acknowledged write
// survives a failover to a replica. Too few in time is Code::Unavailable.
//
// Not thread-safe: use one Redis object per thread. No global state, except
// that SIGPIPE is blocked in the calling thread while a call is in progress.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/errors.hpp"
#include "common/redis_url.hpp"

struct redisContext;

namespace primary {

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

// True for the error of pipeline_replicated() whose writes ran but were not
// confirmed by enough replicas in time. Its message is safe to show clients.
bool replication_shortfall(const Error& error);

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

// The Script of an embedded source (a constant of a generated
// lua_scripts.hpp), made on first use and kept for the life of the process:
//   const Script& reserve_script() { return embedded_script<lua::kReserve>(); }
template <const std::string_view& Source>
const Script& embedded_script() {
  static const Script s{std::string(Source)};
  return s;
}

struct RedisOptions {
  int connect_timeout_ms = 1000;
  int command_timeout_ms = 2000;  // per read or write, not per call
  int sentinel_timeout_ms = 300;  // connect and reply, per Sentinel asked
  // Replicas a replicated write waits for: kAutoReplicas means 1 while the
  // master reports a connected replica (checked with ROLE at most once a
  // second), else 0; 0 never waits.
  static constexpr int kAutoReplicas = -1;
  int wait_replicas = kAutoReplicas;
  int wait_timeout_ms = 1000;
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
  // `meanwhile`, when given, runs once the commands are written, before the
  // replies are read: work that does not need them overlaps Redis's. It runs
  // at most once (not for a command re-sent after NOSCRIPT), and not at all
  // when there is no connection or the commands could not be sent.
  Result<std::vector<RedisReply>> pipeline(const std::vector<Argv>& commands,
                                           const std::function<void()>& meanwhile = {});

  // Runs a script with EVALSHA, loading it when Redis does not know it.
  Result<RedisReply> eval(const Script& script, const Argv& keys, const Argv& args);

  // pipeline() / eval(), then WAIT until the replicas required by
  // RedisOptions::wait_replicas acknowledged every write of this connection.
  // Fewer within wait_timeout_ms, or a connection lost or replaced on the
  // way: Code::Unavailable (replication_shortfall() tells the first), and
  // the writes may or may not survive a failover.
  Result<std::vector<RedisReply>> pipeline_replicated(const std::vector<Argv>& commands);
  Result<RedisReply> eval_replicated(const Script& script, const Argv& keys, const Argv& args);

  // The EVALSHA argv for a script call, for use in pipeline(); remembers the
  // script so that pipeline() can load it.
  // Takes keys and args by value: a caller done with its vectors moves them in.
  Argv script_call(const Script& script, Argv keys, Argv args);

  // True when the server answers PING with PONG.
  bool ping();

  // Whether a connection is currently open (it may still turn out dead).
  bool connected() const { return ctx_ != nullptr; }
  // Closes the connection; the next call reconnects.
  void disconnect();

  const RedisUrl& url() const { return url_; }
  // Where the current (or last) connection went: "host:port", the socket
  // path, or for Sentinel the master's address; empty before any.
  const std::string& server() const { return server_; }
  // Sentinel: the order the Sentinels are asked in (the last to answer first).
  const std::vector<RedisUrl::Address>& sentinels() const { return sentinels_; }

 private:
  struct ContextFree {
    void operator()(redisContext* c) const;
  };
  using Context = std::unique_ptr<redisContext, ContextFree>;

  Status ensure_connected();
  Status connect();
  // Sentinel: the master's address from the first Sentinel that knows it.
  Result<RedisUrl::Address> discover_master();
  // Reads a ROLE reply into replicas_; false when the node is not a master.
  bool note_role(const RedisReply& role);
  // WAIT for the replicas RedisOptions asks for, on the current connection.
  Status await_replicas();
  Result<std::vector<RedisReply>> exchange(const std::vector<Argv>& commands,
                                           const std::function<void()>* meanwhile = nullptr);
  Error io_error(std::string_view during);
  std::string where() const;

  RedisUrl url_;
  RedisOptions options_;
  std::vector<RedisUrl::Address> sentinels_;  // the one that answered last first
  std::string server_;
  uint64_t generation_ = 0;  // connections made so far
  int replicas_ = 0;         // connected replicas the master reported
  int64_t role_checked_ms_ = -1;  // steady clock, -1: not on this connection
  Context ctx_;
  std::unordered_map<std::string, std::string> scripts_;  // sha -> source
  std::unordered_set<std::string> loaded_;                // shas loaded on ctx_
};

}  // namespace primary
