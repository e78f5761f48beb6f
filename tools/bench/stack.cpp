#include "tools/bench/stack.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <spdlog/fmt/fmt.h>

#include "common/client.hpp"
#include "common/process.hpp"

namespace primary::bench {

namespace {

using namespace std::chrono_literals;

Error failure(std::string message) { return Error{Code::Unavailable, std::move(message)}; }

// Waits until `file` names a front endpoint while `proc` runs.
Result<std::string> wait_front(Child& proc, const std::string& file, const std::string& log,
                               std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto front = endpoints_file_value(file, "front")) return *front;
    if (!proc.alive()) return failure("exited during start-up:\n" + log_tail(log));
    std::this_thread::sleep_for(20ms);
  }
  return failure("no endpoints file after " + std::to_string(timeout.count()) + " s:\n" + log_tail(log));
}

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

}  // namespace

std::string log_tail(const std::string& path, size_t lines) {
  const std::string text = read_text_file(path);
  size_t pos = text.size();
  for (size_t n = 0; n <= lines && pos > 0; ++n) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return text.substr(pos + 1);
}

Result<Value> call(zmq::context_t& ctx, const std::string& endpoint, const std::string& service,
                   const std::string& op, Value::Map fields, int timeout_ms) {
  ClientOptions o;
  o.endpoints = {endpoint};
  o.timeout_ms = timeout_ms;
  MdpClient client(ctx, o);
  return client.call(service, op, std::move(fields));
}

bool wait_workers(zmq::context_t& ctx, const std::string& front, const std::string& service,
                  int64_t connections, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    auto r = call(ctx, front, "broker.control", "workers", {}, 1000);
    const Value* services = r ? r->find("services") : nullptr;
    const Value* n = services ? services->find(service) : nullptr;
    if (n && n->is_int() && n->as_int() >= connections) return true;
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

// ---------------------------------------------------------------- EchoStack

Result<std::unique_ptr<EchoStack>> EchoStack::start(zmq::context_t& ctx, const BenchEnv& env,
                                                    TempDir& dir, int workers, int slots) {
  for (const char* exe : {"primary-broker", "primary-echo-worker"})
    if (!executable(env.bin(exe))) return failure(env.bin(exe) + " not found (build it, or give --bin-dir)");
  std::unique_ptr<EchoStack> s(new EchoStack());
  const std::string workers_ep = "ipc://" + dir.file("workers.sock");
  const std::string log = dir.file("broker.log");
  std::vector<std::string> argv = env.broker_prefix;
  argv.insert(argv.end(), {env.bin("primary-broker"), "--insecure",
                           "--front", "tcp://127.0.0.1:*",
                           "--events", "tcp://127.0.0.1:*",
                           "--workers-endpoint", workers_ep,
                           "--event-sink", "ipc://" + dir.file("sink.sock"),
                           "--endpoints-file", dir.file("endpoints"),
                           "--log-level", env.log_level});
  s->broker_ = Child::start(argv, log);
  auto front = wait_front(s->broker_, dir.file("endpoints"), log, env.broker_prefix.empty() ? 10s : 60s);
  if (!front) return failure("primary-broker " + front.error().message);
  s->front_ = *front;
  s->workers_ep_ = workers_ep;
  for (int i = 0; i < workers; ++i)
    s->workers_.push_back(Child::start({env.bin("primary-echo-worker"), "--broker", workers_ep,
                                        "--slots", std::to_string(slots),
                                        "--log-level", env.log_level},
                                       dir.file("echo.log")));
  if (!wait_workers(ctx, s->front_, "echo", int64_t{workers} * slots, env.broker_prefix.empty() ? 15s : 60s))
    return failure("echo workers did not register with the broker:\n" + log_tail(dir.file("echo.log")));
  return s;
}

std::vector<pid_t> EchoStack::worker_pids() const {
  std::vector<pid_t> out;
  for (const auto& w : workers_) out.push_back(w.pid());
  return out;
}

EchoStack::~EchoStack() {
  for (auto& w : workers_) w.signal(SIGTERM);
  for (auto& w : workers_)
    if (!w.wait_exit(3s)) w.kill_tree();
  broker_.signal(SIGTERM);
  if (!broker_.wait_exit(30s)) broker_.kill_tree();  // a profiled broker takes a while
}

// ---------------------------------------------------------------- ServerStack

Result<std::unique_ptr<ServerStack>> ServerStack::start(zmq::context_t& ctx, const BenchEnv& env,
                                                        TempDir& dir, const ServerOptions& options,
                                                        bool wait_license) {
  if (!executable(env.bin("primary-server")))
    return failure(env.bin("primary-server") + " not found (build it, or give --bin-dir)");
  if (wait_license && !executable(env.bin("primary-licensed")))
    return failure(env.bin("primary-licensed") + " not found next to primary-server");
  std::unique_ptr<ServerStack> s(new ServerStack());
  s->data_dir_ = dir.file("data");
  s->log_ = dir.file("server.log");
  std::vector<std::string> argv = {env.bin("primary-server"), "--data-dir", s->data_dir_,
                                   "--front", options.front,
                                   "--events", options.events,
                                   "--insecure", "--log-level", env.log_level,
                                   // the default console port may be in use here
                                   "--web", "127.0.0.1:0"};
  if (!options.vendor_pub.empty()) argv.insert(argv.end(), {"--vendor-key", options.vendor_pub});
  if (options.license_workers > 0)
    argv.insert(argv.end(), {"--license-workers", std::to_string(options.license_workers)});
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  // SIGTERM, not SIGKILL, if the bench dies: the supervisor then stops its
  // own children in order.
  s->server_ = Child::start(argv, s->log_, SIGTERM, options.env);
  auto front = wait_front(s->server_, s->data_dir_ + "/run/endpoints", s->log_, 30s);
  if (!front) return failure("primary-server " + front.error().message);
  s->front_ = *front;
  if (wait_license) {
    // Every licensing worker opens 16 connections (its default --slots).
    const int64_t expected = int64_t{options.license_workers > 0 ? options.license_workers : 2} * 16;
    if (!wait_workers(ctx, s->front_, "license.control", expected, 20s)) {
      if (!wait_workers(ctx, s->front_, "license.control", 1, 1s))
        return failure("no licensing worker registered with the broker within 20 s:\n" +
                       log_tail(s->log_));
      std::cerr << "primary-bench: warning: fewer than " << expected
                << " licensing worker connections registered" << std::endl;
    }
  }
  return s;
}

ServerStack::~ServerStack() { stop(); }

std::optional<int> ServerStack::stop(std::chrono::milliseconds timeout) {
  if (!server_.alive()) return server_.wait_exit(0ms);
  const std::vector<pid_t> tree = process_tree(server_.pid());
  server_.signal(SIGTERM);
  auto code = server_.wait_exit(timeout);
  if (!code) {
    std::cerr << "primary-bench: primary-server did not stop within " << timeout.count()
              << " ms; killing it" << std::endl;
    server_.kill_tree();
  }
  // Its children die with it (PR_SET_PDEATHSIG) and, orphaned, become the
  // bench's (child subreaper); make sure they are gone and reaped.
  // waitpid reaps an orphan that has already exited (a zombie of ours).
  const auto running = [](pid_t p) { return ::waitpid(p, nullptr, WNOHANG) == 0 || (errno == ECHILD && ::kill(p, 0) == 0); };
  std::vector<pid_t> orphans;
  for (pid_t p : tree)
    if (p != server_.pid() && running(p)) orphans.push_back(p);
  if (!orphans.empty()) {
    std::this_thread::sleep_for(500ms);
    for (pid_t p : orphans)
      if (running(p)) {
        std::cerr << "primary-bench: pid " << p << " outlived primary-server; killing it" << std::endl;
        ::kill(p, SIGKILL);
      }
    reap_orphans(orphans);
  }
  return code;
}

Redis ServerStack::redis() const {
  RedisUrl url;
  url.kind = RedisUrl::Kind::Unix;
  url.path = data_dir_ + "/run/redis.sock";
  url.password = read_text_file(data_dir_ + "/redis/password");
  while (!url.password.empty() && std::isspace(static_cast<unsigned char>(url.password.back())))
    url.password.pop_back();
  return Redis(url, RedisOptions{2000, 60000});
}

// ---------------------------------------------------------------- PlainRedis

Result<std::unique_ptr<PlainRedis>> PlainRedis::start(TempDir& dir) {
  std::unique_ptr<PlainRedis> r(new PlainRedis());
  const std::string home = dir.file("plain-redis");
  ::mkdir(home.c_str(), 0700);
  r->socket_ = home + "/redis.sock";
  std::ofstream conf(home + "/redis.conf");
  conf << "port 0\n"
       << "unixsocket " << r->socket_ << "\n"
       << "unixsocketperm 700\n"
       << "dir " << home << "\n"
       << "appendonly yes\n"
       << "appendfsync always\n"
       << "save \"\"\n"
       << "daemonize no\n"
       << "logfile " << home << "/redis.log\n";
  conf.close();
  r->proc_ = Child::start({"redis-server", home + "/redis.conf"}, home + "/stdout.log");
  RedisUrl url;
  url.kind = RedisUrl::Kind::Unix;
  url.path = r->socket_;
  Redis client(url, RedisOptions{200, 1000});
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!client.ping()) {
    if (!r->proc_.alive() || std::chrono::steady_clock::now() >= deadline)
      return failure("redis-server did not start:\n" + log_tail(home + "/stdout.log") +
                     log_tail(home + "/redis.log"));
    std::this_thread::sleep_for(20ms);
  }
  return r;
}

PlainRedis::~PlainRedis() {
  proc_.signal(SIGTERM);
  if (!proc_.wait_exit(5s)) proc_.kill_tree();
}

std::optional<int64_t> redis_info(Redis& redis, const std::string& section, const std::string& field) {
  auto r = redis.command({"INFO", section});
  if (!r || !r->is_str()) return std::nullopt;
  const std::string key = field + ":";
  std::istringstream in(r->str);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(key.size()));
  return std::nullopt;
}

RedisCost redis_cost(Redis& redis) {
  RedisCost c;
  auto info = redis.command({"INFO", "all"});
  if (!info || !info->is_str()) return c;
  std::istringstream in(info->str);
  std::string line;
  auto field = [&](std::string_view key, std::string_view text) -> std::string {
    const auto at = text.find(key);
    if (at == std::string_view::npos) return "0";  // an older Redis without the field
    const auto from = at + key.size();
    return std::string(text.substr(from, text.find_first_of(",\r", from) - from));
  };
  while (std::getline(in, line)) {
    if (line.rfind("used_cpu_sys_main_thread:", 0) == 0 || line.rfind("used_cpu_user_main_thread:", 0) == 0)
      c.cpu_s += std::stod(line.substr(line.find(':') + 1));
    else if (line.rfind("cmdstat_evalsha:", 0) == 0) {
      c.script_calls = std::stoll(field("calls=", line));
      c.script_usec = std::stoll(field("usec=", line));
    } else if (line.rfind("aof_rewrites:", 0) == 0)
      c.aof_rewrites = std::stoll(line.substr(13));
    else if (line.rfind("aof_rewrite_in_progress:1", 0) == 0)
      c.rewriting = true;
  }
  return c;
}

double wait_background_save(Redis& redis, std::chrono::seconds limit) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto busy = [&] {
    for (const char* f : {"aof_rewrite_in_progress", "aof_rewrite_scheduled", "rdb_bgsave_in_progress"})
      if (redis_info(redis, "persistence", f).value_or(0) != 0) return true;
    return false;
  };
  while (busy() && std::chrono::steady_clock::now() - t0 < limit) std::this_thread::sleep_for(100ms);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string describe_redis_cost(const RedisCost& before, const RedisCost& after, int64_t requests) {
  const double n = static_cast<double>(std::max<int64_t>(requests, 1));
  const int64_t calls = after.script_calls - before.script_calls;
  return fmt::format(
      "Redis main thread {:.1f} us CPU per request; {} script calls ({:.1f} requests a call), {:.1f} us each "
      "inside Redis; AOF rewrites {}{}",
      (after.cpu_s - before.cpu_s) * 1e6 / n, calls, n / static_cast<double>(std::max<int64_t>(calls, 1)),
      static_cast<double>(after.script_usec - before.script_usec) / static_cast<double>(std::max<int64_t>(calls, 1)),
      after.aof_rewrites - before.aof_rewrites, after.rewriting || before.rewriting ? " (one in progress)" : "");
}

}  // namespace primary::bench
