#include "tests/support/stack.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <sstream>

#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "tests/support/util.hpp"

namespace primary::test {

std::string run_capture(const std::vector<std::string>& argv, int* exit_code) {
  std::string cmd;
  for (const auto& a : argv) cmd += "'" + a + "' ";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(p);
  if (exit_code) *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

Stack::Stack(StackOptions options) : options_(std::move(options)), ctx_(1), dir_("stack") {
  redis_ = std::make_unique<RedisServer>();
  if (!redis_->ok()) return;
  int rc = 0;
  run_capture({bin("primary-vendor"), "keygen", "--out", dir_.file("vendor")}, &rc);
  if (rc != 0) return;
  if (!ensure_signing_key(dir_.file("lease.key"))) return;

  std::vector<std::string> argv = {bin("primary-broker"), "--insecure",
                                   "--front", "tcp://127.0.0.1:*",
                                   "--events", "tcp://127.0.0.1:*",
                                   "--workers-endpoint", "tcp://127.0.0.1:*",
                                   "--event-sink", "tcp://127.0.0.1:*",
                                   "--endpoints-file", dir_.file("endpoints"),
                                   "--heartbeat-ms", std::to_string(options_.heartbeat_ms)};
  argv.insert(argv.end(), options_.broker_args.begin(), options_.broker_args.end());
  broker = Process::start(argv, {}, dir_.file("broker.log"));
  if (!wait_until([&] { return !read_file(dir_.file("endpoints")).empty(); }, 10s)) return;
  const std::string eps = dir_.file("endpoints");
  front_ = endpoints_file_value(eps, "front").value_or("");
  events_ = endpoints_file_value(eps, "events").value_or("");
  workers_ = endpoints_file_value(eps, "workers").value_or("");
  sink_ = endpoints_file_value(eps, "event-sink").value_or("");
  client_ = client();

  for (int i = 0; i < options_.license_workers; ++i) start_license_worker();
  for (int i = 0; i < options_.echo_workers; ++i)
    echo_workers.push_back(Process::start({bin("primary-echo-worker"), "--broker", workers_,
                                           "--heartbeat-ms", std::to_string(options_.heartbeat_ms)},
                                          {}, dir_.file("echo.log")));
  if (options_.license_workers > 0 &&
      !wait_workers("license", int64_t{options_.license_workers} * options_.license_slots))
    return;
  if (options_.echo_workers > 0 && !wait_workers("echo", options_.echo_workers)) return;
  for (int i = 0; i < options_.admin_workers; ++i) start_admin_worker();
  if (options_.admin_workers > 0 && !wait_admin(options_.admin_workers)) return;
  for (int i = 0; i < options_.updater_workers; ++i) start_updater_worker();
  if (options_.updater_workers > 0 && !wait_workers("update.control", options_.updater_workers)) return;
  ok_ = true;
}

Stack::~Stack() {
  for (auto& w : license_workers) w.signal(SIGTERM);
  for (auto& w : echo_workers) w.signal(SIGTERM);
  for (auto& w : admin_workers) w.signal(SIGTERM);
  for (auto& w : updater_workers) w.signal(SIGTERM);
  for (auto& w : updater_workers) w.wait_exit(3s);
  for (auto& w : license_workers) w.wait_exit(3s);
  for (auto& w : echo_workers) w.wait_exit(3s);
  for (auto& w : admin_workers) w.wait_exit(3s);
  broker.signal(SIGTERM);
  broker.wait_exit(3s);
}

void Stack::start_license_worker() { start_license_worker(options_.licensed_args); }

void Stack::start_license_worker(const std::vector<std::string>& licensed_args) {
  std::vector<std::string> argv = {bin("primary-licensed"),
                                   "--broker", workers_,
                                   "--event-sink", sink_,
                                   "--redis", redis_->url(),
                                   "--lease-key", dir_.file("lease.key"),
                                   "--heartbeat-ms", std::to_string(options_.heartbeat_ms),
                                   "--slots", std::to_string(options_.license_slots)};
  if (options_.vendor_key) {
    argv.push_back("--vendor-key");
    argv.push_back(vendor_pub_file());
  }
  argv.insert(argv.end(), licensed_args.begin(), licensed_args.end());
  license_workers.push_back(Process::start(argv, {}, dir_.file("licensed.log")));
}

void Stack::start_updater_worker(const std::vector<std::string>& extra) {
  std::vector<std::string> args = options_.updater_args;
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<std::string> argv = {bin("primary-updater"), "--broker", workers_, "--event-sink", sink_,
                                   "--redis", redis_->url(), "--heartbeat-ms",
                                   std::to_string(options_.heartbeat_ms)};
  if (std::find(args.begin(), args.end(), "--vendor-key") == args.end())
    argv.insert(argv.end(), {"--vendor-key", vendor_pub_file()});
  if (std::find(args.begin(), args.end(), "--update-dir") == args.end())
    argv.insert(argv.end(), {"--update-dir", dir_.file("updates")});
  argv.insert(argv.end(), args.begin(), args.end());
  updater_workers.push_back(Process::start(argv, {}, dir_.file("updater.log")));
}

void Stack::start_admin_worker(const std::vector<std::string>& extra) {
  std::vector<std::string> args = options_.admin_args;
  args.insert(args.end(), extra.begin(), extra.end());
  auto flag_name = [](const std::string& a) { return a.rfind("--", 0) == 0 ? a.substr(0, a.find('=')) : ""; };
  auto given = [&](const std::string& flag) {
    return std::any_of(args.begin(), args.end(), [&](const std::string& a) { return flag_name(a) == flag; });
  };
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"--broker", workers_},
      {"--redis", redis_->url()},
      {"--event-sink", sink_},
      {"--heartbeat-ms", std::to_string(options_.heartbeat_ms)},
      {"--front", front_},
      {"--events", events_},
      {"--endpoints-file", endpoints_file()},
      {"--slots", std::to_string(options_.admin_slots)}};
  std::vector<std::string> argv = {bin("primary-admin")};
  for (const auto& [flag, value] : defaults)
    if (!given(flag)) argv.insert(argv.end(), {flag, value});
  argv.insert(argv.end(), args.begin(), args.end());
  admin_workers.push_back(Process::start(argv, {}, dir_.file("admin.log")));
}

bool Stack::wait_admin(int64_t workers, int timeout_ms) {
  return wait_workers("admin", workers * options_.admin_slots, timeout_ms);
}

bool Stack::wait_workers(const std::string& service, int64_t connections, int timeout_ms) {
  return wait_until(
      [&] {
        Value r = call("broker.control", "workers");
        const Value* services = r.find("services");
        const Value* n = services ? services->find(service) : nullptr;
        return n && n->is_int() && n->as_int() >= connections;
      },
      std::chrono::milliseconds(timeout_ms), 50ms);
}

std::unique_ptr<MdpClient> Stack::client(int timeout_ms) {
  ClientOptions o;
  o.endpoints = {front_};
  o.timeout_ms = timeout_ms;
  return std::make_unique<MdpClient>(ctx_, o);
}

Value Stack::call(const std::string& service, const std::string& op, Value::Map fields) {
  auto r = client_->call(service, op, std::move(fields));
  if (!r) return Value(Value::Map{{"ok", Value(false)}, {"code", Value("CLIENT")},
                                  {"message", Value(r.error().message)}});
  return *r;
}

std::string Stack::vendor_code(const std::string& registration, int64_t licenses, int64_t issued) {
  std::vector<std::string> argv = {bin("primary-vendor"), "unlock", "--key", vendor_key_file(),
                                   "--registration", registration, "--licenses",
                                   std::to_string(licenses)};
  if (issued) {
    argv.push_back("--issued");
    argv.push_back(std::to_string(issued));
  }
  return run_capture(argv);
}

Value Stack::unlock(const std::string& serial, int64_t licenses) {
  Value reg = call("license.control", "registration", {{"serial", Value(serial)}});
  const Value* code = reg.find("registration_code");
  if (!code) return reg;
  return call("license.control", "unlock",
              {{"unlock_code", Value(vendor_code(code->as_str(), licenses))}});
}

std::string Stack::lease_pub() const {
  auto secret = read_key_file(dir_.file("lease.key"), 64, true);
  return secret ? secret->substr(32) : std::string();
}

std::string front_of(const std::string& data) {
  return endpoints_file_value(data + "/run/endpoints", "front").value_or("");
}

std::string web_address(const std::string& data) {
  std::string text = read_file(data + "/run/web.address");
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

Redis private_redis(const std::string& data) {
  RedisUrl url;
  url.kind = RedisUrl::Kind::Unix;
  url.path = data + "/run/redis.sock";
  url.password = read_file(data + "/redis/password");
  while (!url.password.empty() && url.password.back() == '\n') url.password.pop_back();
  return Redis(url);
}

void register_and_unlock(MdpClient& admin, TempDir& dir, const std::string& serial, int licenses) {
  Value reg;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = admin.call("license.control", "registration", {{"serial", Value(serial)}});
        if (r && r->find("registration_code")) reg = *r;
        return r && r->find("registration_code");
      },
      15s, 100ms));
  const std::string code =
      run_capture({bin("primary-vendor"), "unlock", "--key", dir.file("vendor/vendor.key"), "--registration",
                   str(reg, "registration_code"), "--licenses", std::to_string(licenses)});
  auto unlocked = admin.call("license.control", "unlock", {{"unlock_code", Value(code)}});
  ASSERT_TRUE(unlocked && ok(*unlocked)) << (unlocked ? to_json(*unlocked) : unlocked.error().message);
}

}  // namespace primary::test
