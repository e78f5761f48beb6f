#include "common/redis.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <exception>
#include <iterator>
#include <memory>
#include <new>

#include "common/crypto.hpp"

namespace primary {

namespace {

// hiredis builds replies through these functions: straight into
// RedisReply, each element of an array in place in its parent. Its default
// builds a calloc'ed redisReply per element (calloc skips glibc's
// per-thread cache) that was then copied into a RedisReply and freed: a
// third of a licensing worker's own CPU time under heartbeat load. Only the
// root reply is allocated here, and only the root is ever freed (hiredis
// frees the reply under construction, which is always the root).
RedisReply* reply_slot(const redisReadTask* task) {
  if (task->parent != nullptr) {
    auto* parent = static_cast<RedisReply*>(task->parent->obj);
    return &parent->elements[static_cast<size_t>(task->idx)];
  }
  return new (std::nothrow) RedisReply();
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
  RedisReply* r = reply_slot(task);
  if (r == nullptr) return nullptr;
  r->type = task->type == REDIS_REPLY_ERROR    ? RedisReply::Type::Error
            : task->type == REDIS_REPLY_STATUS ? RedisReply::Type::Status
                                               : RedisReply::Type::Str;
  r->str.assign(str, len);
  return r;
}

void* create_array(const redisReadTask* task, int elements) {
  RedisReply* r = reply_slot(task);
  if (r == nullptr) return nullptr;
  r->type = RedisReply::Type::Array;
  r->elements.resize(static_cast<size_t>(std::max(elements, 0)));
  return r;
}

void* create_integer(const redisReadTask* task, long long value) {
  RedisReply* r = reply_slot(task);
  if (r == nullptr) return nullptr;
  r->type = RedisReply::Type::Int;
  r->integer = value;
  return r;
}

void* create_nil(const redisReadTask* task) {
  RedisReply* r = reply_slot(task);
  if (r != nullptr) r->type = RedisReply::Type::Nil;
  return r;
}

void free_reply(void* reply) { delete static_cast<RedisReply*>(reply); }

redisReplyObjectFunctions reply_functions = {create_string, create_array, create_integer, create_nil,
                                             free_reply};

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

bool transient_error(const RedisReply& reply) {
  if (!reply.is_error()) return false;
  for (std::string_view prefix : {"LOADING", "BUSY", "MASTERDOWN", "READONLY", "NOREPLICAS",
                                  "TRYAGAIN", "CLUSTERDOWN"})
    if (std::string_view(reply.str).substr(0, prefix.size()) == prefix) return true;
  return false;
}

namespace {

constexpr std::string_view kShortfall = "replication: ";

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool is_readonly(const RedisReply& r) { return r.is_error() && starts_with(r.str, "READONLY"); }

// A reply from a node that cannot take writes now: look for the master again.
bool wrong_node(const RedisReply& r) {
  return r.is_error() && (starts_with(r.str, "READONLY") || starts_with(r.str, "LOADING") ||
                          starts_with(r.str, "MASTERDOWN"));
}

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Sends every command and reads every reply; false on any I/O error (the
// context's err/errstr say which).
bool roundtrip(redisContext* c, const std::vector<Redis::Argv>& commands,
               std::vector<RedisReply>* replies, const std::function<void()>* meanwhile = nullptr) {
  // Every reply of every context is read here, so here is where hiredis is
  // told to build RedisReply objects (before the first reply is read).
  c->reader->fn = &reply_functions;
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const Redis::Argv& cmd : commands) {
    argv.clear();
    lens.clear();
    for (const std::string& a : cmd) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(c, static_cast<int>(cmd.size()), argv.data(), lens.data()) !=
        REDIS_OK)
      return false;
  }
  // Should the caller's work throw, its exception is raised only once every
  // reply is read, so the connection is left in step.
  std::exception_ptr failed;
  if (meanwhile) {
    // Everything goes out first (redisGetReply would write it anyway), so
    // that Redis works on it while the caller does.
    for (int done = 0; !done;)
      if (redisBufferWrite(c, &done) != REDIS_OK) return false;
    try {
      (*meanwhile)();
    } catch (...) {
      failed = std::current_exception();
    }
  }
  replies->reserve(commands.size());
  bool ok = true;
  for (size_t i = 0; ok && i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
      ok = false;
    } else {
      std::unique_ptr<RedisReply> reply(static_cast<RedisReply*>(raw));
      replies->push_back(std::move(*reply));
    }
  }
  if (failed) std::rethrow_exception(failed);
  return ok;
}

std::string address_text(const RedisUrl::Address& a) {
  return (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" +
         std::to_string(a.port);
}

}  // namespace

bool replication_shortfall(const Error& error) {
  return error.code == Code::Unavailable && starts_with(error.message, kShortfall);
}

Script::Script(std::string source) : source_(std::move(source)), sha_(sha1_hex(source_)) {}

void Redis::ContextFree::operator()(redisContext* c) const { redisFree(c); }

Redis::Redis(RedisUrl url, RedisOptions options)
    : url_(std::move(url)), options_(options), sentinels_(url_.sentinels) {}
Redis::~Redis() = default;
Redis::Redis(Redis&&) noexcept = default;
Redis& Redis::operator=(Redis&&) noexcept = default;

void Redis::disconnect() {
  ctx_.reset();
  loaded_.clear();
  role_checked_ms_ = -1;
}

std::string Redis::where() const {
  if (url_.kind != RedisUrl::Kind::Sentinel) return redacted(url_);
  return "master '" + url_.master_name + "'" + (server_.empty() ? "" : " at " + server_);
}

Error Redis::io_error(std::string_view during) {
  std::string why = ctx_ && ctx_->errstr[0] ? ctx_->errstr : "connection lost";
  if (ctx_ && ctx_->err == REDIS_ERR_EOF) why = "server closed the connection";
  if (ctx_ && ctx_->err == REDIS_ERR_IO && std::strcmp(ctx_->errstr, std::strerror(EAGAIN)) == 0)
    why = "no reply within " + std::to_string(options_.command_timeout_ms) + " ms";
  disconnect();
  return Error{Code::Unavailable, "redis " + where() + ": " + why + " (" + std::string(during) + ")"};
}

Result<RedisUrl::Address> Redis::discover_master() {
  SigpipeBlock no_sigpipe;  // a Sentinel may close the socket under a write
  const timeval tv = to_timeval(options_.sentinel_timeout_ms);
  std::string why;
  for (size_t i = 0; i < sentinels_.size(); ++i) {
    const RedisUrl::Address& s = sentinels_[i];
    Context c(redisConnectWithTimeout(s.host.c_str(), s.port, tv));
    std::vector<Argv> ask;
    if (!url_.sentinel_password.empty() || !url_.sentinel_user.empty()) {
      if (url_.sentinel_user.empty())
        ask.push_back({"AUTH", url_.sentinel_password});
      else
        ask.push_back({"AUTH", url_.sentinel_user, url_.sentinel_password});
    }
    ask.push_back({"SENTINEL", "get-master-addr-by-name", url_.master_name});
    std::vector<RedisReply> replies;
    std::string failed;
    if (!c) {
      failed = "out of memory";
    } else if (c->err || redisSetTimeout(c.get(), tv) != REDIS_OK ||
               !roundtrip(c.get(), ask, &replies)) {
      failed = c->errstr[0] ? c->errstr : "connection lost";
      if (c->err == REDIS_ERR_IO && std::strcmp(c->errstr, std::strerror(EAGAIN)) == 0)
        failed = "no reply within " + std::to_string(options_.sentinel_timeout_ms) + " ms";
    } else if (replies.front().is_error()) {
      failed = replies.front().str;
    } else {
      const RedisReply& r = replies.back();
      std::optional<int> port;
      if (r.is_array() && r.elements.size() == 2 && r.elements[0].is_str() &&
          r.elements[1].is_str())
        port = parse_port(r.elements[1].str);
      if (r.is_nil()) {
        failed = "does not know master '" + url_.master_name + "'";
      } else if (r.is_error()) {
        failed = r.str;
      } else if (!port || r.elements[0].str.empty()) {
        failed = "unexpected reply to get-master-addr-by-name";
      } else {
        // The guidelines: the Sentinel that answered is asked first next time.
        std::rotate(sentinels_.begin(), sentinels_.begin() + static_cast<std::ptrdiff_t>(i),
                    sentinels_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        return RedisUrl::Address{r.elements[0].str, *port};
      }
    }
    why += (why.empty() ? "" : "; ") + address_text(s) + ": " + failed;
  }
  return Error{Code::Unavailable,
               "redis: no Sentinel gave the address of master '" + url_.master_name + "' (" + why + ")"};
}

bool Redis::note_role(const RedisReply& role) {
  if (!role.is_array() || role.elements.empty() || role.elements[0].str != "master") return false;
  replicas_ = role.elements.size() > 2 && role.elements[2].is_array()
                  ? static_cast<int>(role.elements[2].elements.size())
                  : 0;
  role_checked_ms_ = steady_ms();
  return true;
}

Status Redis::connect() {
  disconnect();
  const bool sentinel = url_.kind == RedisUrl::Kind::Sentinel;
  RedisUrl::Address target{url_.host, url_.port};
  if (sentinel) {
    auto master = discover_master();
    if (!master) return master.error();
    target = std::move(*master);
  }
  server_ = url_.kind == RedisUrl::Kind::Unix ? url_.path : address_text(target);
  timeval tv = to_timeval(options_.connect_timeout_ms);
  redisContext* c = url_.kind == RedisUrl::Kind::Unix
                        ? redisConnectUnixWithTimeout(url_.path.c_str(), tv)
                        : redisConnectWithTimeout(target.host.c_str(), target.port, tv);
  if (c == nullptr) return Error{Code::Unavailable, "redis: out of memory"};
  ctx_.reset(c);
  if (c->err) return io_error("connect");
  if (redisSetTimeout(c, to_timeval(options_.command_timeout_ms)) != REDIS_OK)
    return io_error("set timeout");
  if (url_.kind != RedisUrl::Kind::Unix) redisEnableKeepAlive(c);
  ++generation_;

  std::vector<Argv> hello;
  if (!url_.password.empty() || !url_.user.empty()) {
    if (url_.user.empty())
      hello.push_back({"AUTH", url_.password});
    else
      hello.push_back({"AUTH", url_.user, url_.password});
  }
  if (url_.db != 0) hello.push_back({"SELECT", std::to_string(url_.db)});
  // Sentinel: the guidelines' step 3, is it really the master? Auto
  // replicas: how many replicas to wait for.
  const bool role = sentinel || options_.wait_replicas == RedisOptions::kAutoReplicas;
  if (role) hello.push_back({"ROLE"});
  if (hello.empty()) return {};
  auto replies = exchange(hello);
  if (!replies) return replies.error();
  for (size_t i = 0; i + (role ? 1 : 0) < hello.size(); ++i) {
    if ((*replies)[i].is_error()) {
      disconnect();
      return Error{Code::Unavailable,
                   "redis " + where() + ": " + hello[i][0] + " refused: " + (*replies)[i].str};
    }
  }
  if (!role) return {};
  const RedisReply& r = replies->back();
  if (sentinel && !note_role(r)) {
    std::string what = r.is_error()                             ? "refused ROLE: " + r.str
                       : r.is_array() && !r.elements.empty()    ? "is a " + r.elements[0].str
                                                                : "gave a bad ROLE reply";
    disconnect();
    return Error{Code::Unavailable, "redis " + where() + ", named by a Sentinel, " + what +
                                        "; the Sentinels are asked again on the next call"};
  }
  if (!sentinel && !note_role(r)) {
    replicas_ = 0;  // ROLE refused (ACL) or not a master: nothing to wait for
    role_checked_ms_ = steady_ms();
  }
  return {};
}

Status Redis::ensure_connected() {
  if (ctx_) {
    // An idle connection has nothing to read; readable means EOF or an error
    // (e.g. Redis restarted), so reconnect rather than send into a dead socket.
    pollfd p{ctx_->fd, POLLIN, 0};
    if (poll(&p, 1, 0) != 0) disconnect();
  }
  if (!ctx_) return connect();
  return {};
}

Result<std::vector<RedisReply>> Redis::exchange(const std::vector<Argv>& commands,
                                                const std::function<void()>* meanwhile) {
  SigpipeBlock no_sigpipe;
  std::vector<RedisReply> replies;
  bool sent = false;
  try {
    sent = roundtrip(ctx_.get(), commands, &replies, meanwhile);
  } catch (...) {  // from `meanwhile`, raised after the replies were read
    if (ctx_ && ctx_->err) disconnect();
    throw;
  }
  if (!sent) {
    return io_error(commands[std::min(replies.size(), commands.size() - 1)][0]);
  }
  // This node cannot serve now (turned replica, loading): the next call
  // connects again, through the Sentinels when there are some.
  if (std::any_of(replies.begin(), replies.end(), wrong_node)) disconnect();
  return replies;
}

Result<RedisReply> Redis::command(std::initializer_list<std::string_view> argv) {
  return command(Argv(argv.begin(), argv.end()));
}

Result<RedisReply> Redis::command(const Argv& argv) {
  if (argv.empty()) return Error{Code::BadRequest, "redis: empty command"};
  if (auto st = ensure_connected(); !st) return st.error();
  auto replies = exchange({argv});
  if (!replies) return replies.error();
  return std::move(replies->front());
}

Result<std::vector<RedisReply>> Redis::pipeline(const std::vector<Argv>& commands,
                                                const std::function<void()>& meanwhile) {
  for (const Argv& cmd : commands)
    if (cmd.empty()) return Error{Code::BadRequest, "redis: empty command in pipeline"};
  if (commands.empty()) return std::vector<RedisReply>{};
  if (auto st = ensure_connected(); !st) return st.error();

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
  // The commands go as they are (no copy) unless scripts must load first.
  auto with_loads = [&](const std::vector<std::string>& shas, std::vector<Argv> cmds) {
    std::vector<Argv> batch;
    batch.reserve(shas.size() + cmds.size());
    for (const std::string& sha : shas) batch.push_back({"SCRIPT", "LOAD", scripts_[sha]});
    batch.insert(batch.end(), std::make_move_iterator(cmds.begin()), std::make_move_iterator(cmds.end()));
    return batch;
  };
  const std::function<void()>* work = meanwhile ? &meanwhile : nullptr;
  auto sent = preload.empty() ? exchange(commands, work) : exchange(with_loads(preload, commands), work);
  if (!sent) return sent.error();
  for (size_t i = 0; i < preload.size(); ++i)
    if (!(*sent)[i].is_error()) loaded_.insert(preload[i]);
  std::vector<RedisReply> replies(std::make_move_iterator(sent->begin() + preload.size()),
                                  std::make_move_iterator(sent->end()));

  // NOSCRIPT: the cache was flushed under us. READONLY: the node has turned
  // replica, and exchange() closed the connection so that the next one goes
  // to the current master. Neither call ran: send it again (once), loading
  // its script first where the connection lacks it.
  std::vector<size_t> again;
  for (size_t i = 0; i < commands.size(); ++i) {
    const std::string* sha = script_of(commands[i]);
    if (sha && is_noscript(replies[i])) {
      loaded_.erase(*sha);
      again.push_back(i);
    } else if (is_readonly(replies[i])) {
      again.push_back(i);
    }
  }
  if (again.empty()) return replies;
  if (auto st = ensure_connected(); !st) return st.error();
  std::vector<std::string> reload;
  for (size_t i : again) {
    const std::string* sha = script_of(commands[i]);
    if (sha && !loaded_.count(*sha) && std::find(reload.begin(), reload.end(), *sha) == reload.end())
      reload.push_back(*sha);
  }
  std::vector<Argv> retry;
  for (size_t i : again) retry.push_back(commands[i]);
  auto retried = exchange(with_loads(reload, std::move(retry)));
  if (!retried) return retried.error();
  for (size_t i = 0; i < reload.size(); ++i)
    if (!(*retried)[i].is_error()) loaded_.insert(reload[i]);
  for (size_t j = 0; j < again.size(); ++j)
    replies[again[j]] = std::move((*retried)[reload.size() + j]);
  return replies;
}

Status Redis::await_replicas() {
  int need = options_.wait_replicas;
  if (need == RedisOptions::kAutoReplicas) {
    if (role_checked_ms_ < 0 || steady_ms() - role_checked_ms_ >= 1000) {
      auto role = exchange({{"ROLE"}});
      if (!role) return role.error();
      if (!note_role(role->front())) {
        replicas_ = 0;
        role_checked_ms_ = steady_ms();
      }
    }
    need = replicas_ > 0 ? 1 : 0;
  }
  if (need <= 0) return {};
  if (!ctx_) return Error{Code::Unavailable, "redis " + where() + ": connection lost before WAIT"};
  // WAIT blocks up to its own timeout: read its reply with that much more.
  redisSetTimeout(ctx_.get(), to_timeval(options_.wait_timeout_ms + options_.command_timeout_ms));
  auto waited = exchange({{"WAIT", std::to_string(need), std::to_string(options_.wait_timeout_ms)}});
  if (ctx_) redisSetTimeout(ctx_.get(), to_timeval(options_.command_timeout_ms));
  if (!waited) return waited.error();
  const RedisReply& r = waited->front();
  if (r.is_error()) return Error{Code::Unavailable, "redis " + where() + ": WAIT refused: " + r.str};
  if (r.integer < need)
    return Error{Code::Unavailable,
                 std::string(kShortfall) + std::to_string(r.integer) + " of " +
                     std::to_string(need) + " Redis replicas confirmed the write within " +
                     std::to_string(options_.wait_timeout_ms) + " ms"};
  return {};
}

Result<std::vector<RedisReply>> Redis::pipeline_replicated(const std::vector<Argv>& commands) {
  if (commands.empty()) return std::vector<RedisReply>{};
  if (auto st = ensure_connected(); !st) return st.error();
  const uint64_t connection = generation_;
  auto replies = pipeline(commands);
  if (!replies) return replies;
  // WAIT covers the writes of its own connection only.
  if (!ctx_ || generation_ != connection)
    return Error{Code::Unavailable,
                 "redis " + where() + ": connection replaced before replicas confirmed the write"};
  if (auto st = await_replicas(); !st) return st.error();
  return replies;
}

Result<RedisReply> Redis::eval_replicated(const Script& script, const Argv& keys,
                                          const Argv& args) {
  auto replies = pipeline_replicated({script_call(script, keys, args)});
  if (!replies) return replies.error();
  return std::move(replies->front());
}

Redis::Argv Redis::script_call(const Script& script, Argv keys, Argv args) {
  scripts_.try_emplace(script.sha(), script.source());
  Argv argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha());
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), std::make_move_iterator(keys.begin()), std::make_move_iterator(keys.end()));
  argv.insert(argv.end(), std::make_move_iterator(args.begin()), std::make_move_iterator(args.end()));
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
