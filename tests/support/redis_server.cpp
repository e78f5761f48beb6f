#include "tests/support/redis_server.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "common/redis.hpp"
#include "tests/support/util.hpp"

namespace primary::test {

namespace {

// A TCP port that was free a moment ago (the kernel's pick for port 0).
int free_port() {
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

}  // namespace

RedisServer::RedisServer() : RedisServer(Options{}) {}

RedisServer::RedisServer(Options options) : dir_("pr") {
  if (options.tcp) port_ = free_port();
  std::ofstream conf(dir_.file("redis.conf"));
  conf << "port " << port_ << "\n"
       << (port_ ? "bind 127.0.0.1\n" : "")
       << "unixsocket " << socket_path() << "\n"
       << "unixsocketperm 700\n"
       << "dir " << dir_.path() << "\n"
       << "appendonly yes\n"
       << "appendfsync always\n"
       << "save \"\"\n"
       << "daemonize no\n"
       << "logfile " << dir_.file("redis.log") << "\n";
  conf.close();
  ok_ = launch();
}

RedisServer::~RedisServer() { kill9(); }

std::string RedisServer::url() const { return "unix://" + socket_path(); }

std::string RedisServer::tcp_url() const {
  return port_ ? "redis://127.0.0.1:" + std::to_string(port_) : std::string();
}

std::string RedisServer::log() const { return read_file(dir_.file("redis.log")); }

bool RedisServer::launch() {
  proc_ = Process::start({"redis-server", dir_.file("redis.conf")}, {},
                         dir_.file("redis.stdout"));
  auto url = parse_redis_url(this->url());
  Redis redis(*url, RedisOptions{200, 1000});
  // Ready means answering PING and done loading the AOF.
  bool up = wait_until(
      [&] {
        if (!proc_.alive() || !redis.ping()) return false;
        auto info = redis.command({"INFO", "persistence"});
        return info && info->str.find("loading:0") != std::string::npos;
      },
      std::chrono::seconds(10), std::chrono::milliseconds(20));
  if (!up) {
    ADD_FAILURE() << "redis-server did not start in " << dir_.path() << "\n"
                  << read_file(dir_.file("redis.stdout")) << log();
  }
  return up;
}

void RedisServer::stop() {
  if (proc_.signal(SIGTERM) && !proc_.wait_exit(std::chrono::seconds(5))) proc_.kill();
  proc_.kill();
  ok_ = false;
}

void RedisServer::kill9() {
  proc_.kill();
  ok_ = false;
}

bool RedisServer::restart() {
  stop();
  ok_ = launch();
  return ok_;
}

}  // namespace primary::test
