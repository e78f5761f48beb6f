// A whole server for system tests: a private redis-server, a broker and
// workers as real processes, every port bound to 0, plus a vendor keypair
// and a lease key, and helpers to talk to it.
#pragma once

#include <zmq.hpp>

#include <memory>
#include <string>
#include <vector>

#include "common/client.hpp"
#include "common/redis.hpp"
#include "common/value.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace primary::test {

struct StackOptions {
  int license_workers = 1;
  int license_slots = 8;
  int echo_workers = 0;
  int heartbeat_ms = 200;
  std::vector<std::string> broker_args;
  std::vector<std::string> licensed_args;  // e.g. --check-interval-s 2
  bool vendor_key = true;                  // pass --vendor-key to licensed
  int admin_workers = 0;                   // primary-admin processes
  int admin_slots = 4;
  // e.g. --check-interval-s 1; a flag given here replaces the fixture's own
  // (--front, --events: what the firewall rules are about).
  std::vector<std::string> admin_args;
  int updater_workers = 0;                 // primary-updater processes
  std::vector<std::string> updater_args;   // e.g. --update-feed URL
};

class Stack {
 public:
  explicit Stack(StackOptions options = {});
  ~Stack();

  // True when everything started and every worker registered.
  bool ok() const { return ok_; }

  zmq::context_t& ctx() { return ctx_; }
  TempDir& dir() { return dir_; }
  RedisServer& redis() { return *redis_; }
  const std::string& front() const { return front_; }
  const std::string& events() const { return events_; }

  // A fresh client to the front door.
  std::unique_ptr<MdpClient> client(int timeout_ms = 5000);
  // One call on the stack's own client; the reply map (ok or not).
  Value call(const std::string& service, const std::string& op, Value::Map fields = {});

  // Registers `serial`, issues a vendor code for `licenses` and unlocks;
  // returns the unlock reply.
  Value unlock(const std::string& serial, int64_t licenses);
  // Issues an unlock code for the registration code (vendor side).
  std::string vendor_code(const std::string& registration, int64_t licenses, int64_t issued = 0);
  std::string vendor_key_file() const { return dir_.file("vendor/vendor.key"); }
  std::string vendor_pub_file() const { return dir_.file("vendor/vendor.pub"); }
  std::string lease_pub() const;  // raw 32 bytes

  // Starts one more licensing worker; the list of them is public for tests
  // that kill some.
  void start_license_worker();
  // The same with these arguments instead of StackOptions::licensed_args.
  void start_license_worker(const std::vector<std::string>& licensed_args);
  std::vector<Process> license_workers;
  // Starts one more admin worker with admin_args plus `extra` (a flag in
  // either replaces the fixture's default for it); logs to admin.log.
  void start_admin_worker(const std::vector<std::string>& extra = {});
  std::vector<Process> admin_workers;
  // Waits until the broker counts `workers` admin workers (all their slots).
  bool wait_admin(int64_t workers = 1, int timeout_ms = 10000);
  const std::string& workers_endpoint() const { return workers_; }
  std::string endpoints_file() const { return dir_.file("endpoints"); }
  std::vector<Process> echo_workers;
  // Starts one more updater (store DIR/updates unless --update-dir is given,
  // the stack's vendor key) with updater_args plus `extra`; logs to updater.log.
  void start_updater_worker(const std::vector<std::string>& extra = {});
  std::vector<Process> updater_workers;
  Process broker;

  // Waits until the broker counts `connections` worker connections for `service`.
  bool wait_workers(const std::string& service, int64_t connections, int timeout_ms = 10000);

 private:
  StackOptions options_;
  zmq::context_t ctx_;
  TempDir dir_;
  std::unique_ptr<RedisServer> redis_;
  std::string front_, events_, workers_, sink_;
  std::unique_ptr<MdpClient> client_;
  bool ok_ = false;
};

// Runs a command line and returns its stdout (trailing newline removed).
std::string run_capture(const std::vector<std::string>& argv, int* exit_code = nullptr);

// Of a primary-server started with --data DATA (the whole server, not a
// StackServer): the front endpoint it wrote to DATA/run/endpoints, empty
// until written; and a connection to its private Redis (socket and password
// under DATA).
std::string front_of(const std::string& data);
Redis private_redis(const std::string& data);
// The console's base URL it wrote to DATA/run/web.address (line end
// removed), empty until written.
std::string web_address(const std::string& data);
// Registers `serial` on the server behind `admin` (waiting for its workers)
// and unlocks it for `licenses` with the vendor key under DIR/vendor
// (`primary-vendor keygen --out DIR/vendor`). Fails the test if it cannot.
void register_and_unlock(MdpClient& admin, TempDir& dir, const std::string& serial, int licenses);

}  // namespace primary::test
