#include "tests/support/sentinel.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "common/redis.hpp"
#include "tests/support/util.hpp"

namespace primary::test {

namespace {

Redis direct(int port, int timeout_ms = 500) {
  RedisUrl url;
  url.kind = RedisUrl::Kind::Tcp;
  url.host = "127.0.0.1";
  url.port = port;
  RedisOptions o;
  o.connect_timeout_ms = timeout_ms;
  o.command_timeout_ms = timeout_ms;
  o.wait_replicas = 0;  // no ROLE on connect: a Sentinel does not serve writes
  return Redis(url, o);
}

}  // namespace

std::string sentinel_executable() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/redis-sentinel";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

int free_tcp_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

int tcp_port(const RedisServer& server) {
  const std::string url = server.tcp_url();
  return url.empty() ? 0 : std::atoi(url.substr(url.rfind(':') + 1).c_str());
}

SentinelProcess::SentinelProcess(Options options) : options_(std::move(options)), dir_("ps") {
  ok_ = launch() || launch();
}

SentinelProcess::~SentinelProcess() { proc_.kill(); }

std::string SentinelProcess::log() const { return read_file(dir_.file("sentinel.log")); }

bool SentinelProcess::launch() {
  proc_.kill();
  port_ = free_tcp_port();
  const std::string& name = options_.master_name;
  std::ofstream conf(dir_.file("sentinel.conf"));  // Sentinel rewrites it: its own copy
  conf << "port " << port_ << "\n"
       << "bind 127.0.0.1\n"
       << "daemonize no\n"
       << "dir " << dir_.path() << "\n"
       << "logfile " << dir_.file("sentinel.log") << "\n"
       << "sentinel monitor " << name << " 127.0.0.1 " << options_.master_port << " "
       << options_.quorum << "\n"
       << "sentinel down-after-milliseconds " << name << " " << options_.down_after_ms << "\n"
       << "sentinel failover-timeout " << name << " " << options_.failover_timeout_ms << "\n"
       << "sentinel parallel-syncs " << name << " 1\n";
  conf.close();
  proc_ = Process::start({sentinel_executable(), dir_.file("sentinel.conf")}, {},
                         dir_.file("sentinel.stdout"));
  Redis r = direct(port_);
  return wait_until(
      [&] {
        if (!proc_.alive()) return false;
        auto got = r.command({"SENTINEL", "get-master-addr-by-name", name});
        return got && got->is_array();
      },
      std::chrono::seconds(5), std::chrono::milliseconds(20));
}

SentinelGroup::SentinelGroup() : SentinelGroup(Options{}) {}

SentinelGroup::SentinelGroup(Options options) : options_(std::move(options)) {
  master_ = std::make_unique<RedisServer>(RedisServer::Options{.tcp = true});
  replica_ = std::make_unique<RedisServer>(RedisServer::Options{.tcp = true});
  if (!master_->ok() || !replica_->ok()) return;
  const int master_port = tcp_port(*master_);
  Redis master = direct(master_port);
  // Redis 7 waits 5 s for more replicas before a diskless sync; no need.
  auto nodelay = master.command({"CONFIG", "SET", "repl-diskless-sync-delay", "0"});
  if (!nodelay || !nodelay->is_status("OK")) ADD_FAILURE() << "CONFIG SET on the master failed";
  Redis replica = direct(tcp_port(*replica_));
  auto of = replica.command({"REPLICAOF", "127.0.0.1", std::to_string(master_port)});
  if (!of || !of->is_status("OK")) {
    ADD_FAILURE() << "REPLICAOF failed";
    return;
  }
  if (!wait_until(
          [&] {
            auto info = replica.command({"INFO", "replication"});
            return info && info->str.find("master_link_status:up") != std::string::npos;
          },
          std::chrono::seconds(10), std::chrono::milliseconds(20))) {
    ADD_FAILURE() << "the replica did not sync:\n" << replica_->log();
    return;
  }
  // After a diskless sync the master streams to the replica (and so counts
  // it for WAIT) only from its first REPLCONF ACK, up to a second after the
  // replica says "up": wait until a WAIT sees it.
  if (!wait_until(
          [&] {
            auto set = master.command({"SET", "test:replica-synced", "1"});
            auto wait = master.command({"WAIT", "1", "100"});
            return set && wait && wait->integer == 1;
          },
          std::chrono::seconds(10), std::chrono::milliseconds(20))) {
    ADD_FAILURE() << "WAIT never counted the replica:\n" << master_->log();
    return;
  }
  for (int i = 0; i < options_.sentinels; ++i) {
    SentinelProcess::Options so;
    so.master_name = options_.master_name;
    so.master_port = master_port;
    so.quorum = options_.sentinels / 2 + 1;
    so.down_after_ms = options_.down_after_ms;
    so.failover_timeout_ms = options_.failover_timeout_ms;
    sentinels.push_back(std::make_unique<SentinelProcess>(so));
    if (!sentinels.back()->ok()) {
      ADD_FAILURE() << "redis-sentinel did not start:\n" << sentinels.back()->log();
      return;
    }
  }
  // Sentinels find each other through the master every 2 s.
  ok_ = wait_until(
      [&] {
        for (auto& s : sentinels) {
          Redis r = direct(s->port());
          auto quorum = r.command({"SENTINEL", "CKQUORUM", options_.master_name});
          auto replicas = r.command({"SENTINEL", "REPLICAS", options_.master_name});
          if (!quorum || !quorum->is_status() || !replicas || !replicas->is_array() ||
              replicas->elements.size() != 1)
            return false;
          auto others = r.command({"SENTINEL", "SENTINELS", options_.master_name});
          if (!others || !others->is_array() ||
              others->elements.size() != sentinels.size() - 1)
            return false;
        }
        return true;
      },
      std::chrono::seconds(20), std::chrono::milliseconds(100));
  if (!ok_) ADD_FAILURE() << "the Sentinels did not come together:\n" << logs();
}

std::string SentinelGroup::url() const {
  std::string url = "sentinel://";
  for (size_t i = 0; i < sentinels.size(); ++i)
    url += (i ? "," : "") + sentinels[i]->address();
  return url + "/" + options_.master_name;
}

int SentinelGroup::reported_master_port() {
  for (auto& s : sentinels) {
    Redis r = direct(s->port());
    auto got = r.command({"SENTINEL", "get-master-addr-by-name", options_.master_name});
    if (got && got->is_array() && got->elements.size() == 2)
      return std::atoi(got->elements[1].str.c_str());
  }
  return 0;
}

std::string SentinelGroup::logs() const {
  std::string out;
  for (const auto& s : sentinels) out += "--- sentinel " + s->address() + "\n" + s->log();
  return out;
}

}  // namespace primary::test
