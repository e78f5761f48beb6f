// Secure mode against the real primary-server: CURVE on the front door and
// the event stream, roles through ZAP, the admin allow-list re-read on
// SIGHUP, secret key files guarded.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <zmq.h>

#include <cstdlib>
#include <fstream>

#include "common/client.hpp"
#include "common/codec.hpp"
#include "common/curve.hpp"
#include "common/process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/procfs.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary::test {
namespace {

std::string code_of(const Result<Value>& r) {
  if (!r) return "NO_REPLY";
  const Value* c = r->find("code");
  return c && c->is_str() ? c->as_str() : "OK";
}

std::string endpoint(const std::string& data, const std::string& key) {
  return endpoints_file_value(data + "/run/endpoints", key).value_or("");
}

class SecureServer : public ::testing::Test {
 protected:
  void SetUp() override {
    run_capture({bin("primary-vendor"), "keygen", "--out", dir.file("vendor")});
    start();
  }
  void start() {
    ::unlink((data() + "/run/endpoints").c_str());
    server = Process::start({bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", data(), "--front", "tcp://127.0.0.1:*",
                             "--events", "tcp://127.0.0.1:*", "--vendor-key", dir.file("vendor/vendor.pub"),
                             "--license-workers", "1", "--heartbeat-ms", "200"},
                            {}, dir.file("server.log"));
    ASSERT_TRUE(wait_until([&] { return !endpoint(data(), "front").empty(); }, 15s))
        << read_file(dir.file("server.log"));
    server_public = read_curve_public(data() + "/keys/server.pub").value();
  }
  std::string data() const { return dir.file("data"); }
  std::unique_ptr<MdpClient> client(const CurveKeypair* kp, bool curve = true) {
    ClientOptions o;
    o.endpoints = {endpoint(data(), "front")};
    o.timeout_ms = 2000;
    if (curve) {
      o.server_key = server_public;
      if (kp) {
        o.public_key = kp->public_key;
        o.secret_key = kp->secret_key;
      }
    }
    return std::make_unique<MdpClient>(ctx, o);
  }
  // A SUB with CURVE that records every event type it gets.
  zmq::socket_t subscriber(const CurveKeypair& kp) {
    zmq::socket_t sub(ctx, zmq::socket_type::sub);
    sub.set(zmq::sockopt::curve_serverkey, server_public);
    sub.set(zmq::sockopt::curve_publickey, kp.public_key);
    sub.set(zmq::sockopt::curve_secretkey, kp.secret_key);
    sub.set(zmq::sockopt::subscribe, "");
    sub.set(zmq::sockopt::rcvtimeo, 100);
    sub.connect(endpoint(data(), "events"));
    return sub;
  }
  bool admit(const CurveKeypair& kp) {
    std::ofstream(data() + "/keys/admins", std::ios::app) << kp.public_key << "  # test admin\n";
    ::kill(server.pid(), SIGHUP);
    auto c = client(&kp);
    std::string last;
    const bool ok = wait_until([&] { return (last = code_of(c->call("admin", "status"))) == "OK"; }, 10s, 100ms);
    if (!ok) ADD_FAILURE() << "admin status with the admitted key: " << last;
    return ok;
  }

  TempDir dir{"sec"};
  zmq::context_t ctx{1};
  Process server;
  std::string server_public;
};

// common/curve makes and checks keys without libzmq (so primary-server does
// not load it): its Z85 and Curve25519 must agree with libzmq's own.
TEST(CurveKeys, Z85AndKeysAgreeWithLibzmq) {
  std::string raw(32, '\0');
  for (int round = 0; round < 200; ++round) {
    for (auto& c : raw) c = static_cast<char>(std::rand() & 0xff);
    char theirs[41];
    ASSERT_NE(zmq_z85_encode(theirs, reinterpret_cast<const uint8_t*>(raw.data()), raw.size()), nullptr);
    const std::string ours = z85_encode(raw);
    ASSERT_EQ(ours, theirs);
    EXPECT_EQ(z85_decode(ours), raw);
  }
  EXPECT_EQ(z85_encode(std::string(4, '\xff')), "%nSc0");
  EXPECT_EQ(z85_decode("%nSc1"), std::nullopt);  // past 2^32 - 1
  EXPECT_EQ(z85_decode("abc~e"), std::nullopt);  // not in the alphabet
  EXPECT_EQ(z85_decode("abcd"), std::nullopt);   // not a multiple of 5
  EXPECT_EQ(z85_decode(std::string("ab\0de", 5)), std::nullopt);
  EXPECT_EQ(z85_encode("abc"), "");

  for (int round = 0; round < 20; ++round) {
    const CurveKeypair ours = curve_keypair();
    char pub[41];
    ASSERT_EQ(zmq_curve_public(pub, ours.secret_key.c_str()), 0);
    EXPECT_EQ(ours.public_key, pub);
    char their_pub[41], their_sec[41];
    ASSERT_EQ(zmq_curve_keypair(their_pub, their_sec), 0);
    EXPECT_EQ(curve_public_of(their_sec), their_pub);
  }
  EXPECT_EQ(curve_public_of("short"), "");
  EXPECT_FALSE(valid_z85_key(std::string(40, '~')));
}

TEST_F(SecureServer, PlainClientsGetNothing) {
  auto plain = client(nullptr, false);
  EXPECT_EQ(code_of(plain->call("license", "heartbeat",
                                {{"computer", Value("a")}, {"license", Value("b")}})),
            "NO_REPLY");
}

TEST_F(SecureServer, ClientRoleServesPublicServicesOnly) {
  const CurveKeypair anyone = curve_keypair();
  auto c = client(&anyone);
  auto hb = c->call("license", "heartbeat", {{"computer", Value("pc")}, {"license", Value("x")}});
  ASSERT_TRUE(hb.ok());
  EXPECT_EQ(hb->find("status")->as_str(), "unlicensed");
  EXPECT_EQ(code_of(c->call("admin", "status")), "UNAUTHORIZED");
  EXPECT_EQ(code_of(c->call("license.control", "reserve", {{"computer", Value("pc")}})), "UNAUTHORIZED");
  EXPECT_EQ(code_of(c->call("broker.control", "workers")), "UNAUTHORIZED");
  EXPECT_EQ(code_of(c->call("update.control", "releases")), "UNAUTHORIZED");
}

TEST_F(SecureServer, RemovingAKeyAndSighupRevokesIt) {
  const CurveKeypair admin = curve_keypair();
  ASSERT_TRUE(admit(admin));
  auto c = client(&admin);
  ASSERT_EQ(code_of(c->call("admin", "status")), "OK");
  // Rewrite the list without the key; the open connection loses the role.
  std::ofstream(data() + "/keys/admins", std::ios::trunc) << "# nobody\n";
  ::kill(server.pid(), SIGHUP);
  std::string last;
  EXPECT_TRUE(wait_until([&] { return (last = code_of(c->call("admin", "status"))) == "UNAUTHORIZED"; }, 10s, 100ms))
      << "last answer: " << last << "; front then " << c->endpoint() << ", now "
      << endpoint(data(), "front") << "\n" << read_file(dir.file("server.log"));
  EXPECT_EQ(code_of(client(&admin)->call("license.control", "registration")), "UNAUTHORIZED");
}

TEST_F(SecureServer, AdminKeyAddedOnSighupWithoutRestart) {
  const CurveKeypair admin = curve_keypair();
  auto c = client(&admin);
  EXPECT_EQ(code_of(c->call("admin", "status")), "UNAUTHORIZED");
  const auto brokers = children_named(server.pid(), "primary-broker");
  ASSERT_TRUE(admit(admin));
  EXPECT_EQ(children_named(server.pid(), "primary-broker"), brokers);  // same process
  // The admin worker reaches the broker with the server's own key (and the
  // licensing worker may still be starting).
  Value status;
  EXPECT_TRUE(wait_until([&] {
    auto r = c->call("admin", "status");
    if (r) status = *r;
    const Value* services = status.find("services");
    return services && services->find("license");
  }, 10s, 100ms)) << to_json(status);
  // setup_info hands Client installers the server key.
  Value reg = *c->call("license.control", "registration", {{"serial", Value("SN-SEC")}});
  const std::string code = run_capture({bin("primary-vendor"), "unlock", "--key", dir.file("vendor/vendor.key"),
                                        "--registration", reg.find("registration_code")->as_str(),
                                        "--licenses", "5"});
  ASSERT_EQ(code_of(c->call("license.control", "unlock", {{"unlock_code", Value(code)}})), "OK");
  ASSERT_EQ(code_of(c->call("license.control", "reserve", {{"computer", Value("pc-1")}})), "OK");
  auto info = c->call("license.control", "setup_info", {{"computer", Value("pc-1")}});
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->find("server_key")->as_str(), server_public);
}

// Who a privileged request is from comes from the connection's key: the
// name on its allow-list line, else the key's fingerprint; never from the
// body (issue 23, part 1).
TEST_F(SecureServer, WhoamiNamesTheAdminKeyNeverWhatTheBodyClaims) {
  const CurveKeypair alice = curve_keypair(), unnamed = curve_keypair(), other = curve_keypair();
  std::ofstream(data() + "/keys/admins", std::ios::app) << alice.public_key << "  # alice, the night shift\n"
                                                         << unnamed.public_key << "\n";
  ::kill(server.pid(), SIGHUP);
  auto a = client(&alice);
  auto u = client(&unnamed);
  Value who;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = a->call("broker.control", "whoami", {{"actor", Value("mallory")}});
        if (r) who = *r;
        return code_of(r) == "OK";
      },
      10s, 100ms))
      << to_json(who);
  EXPECT_EQ(str(who, "actor"), "alice") << to_json(who);
  EXPECT_EQ(str(who, "role"), "admin");
  EXPECT_EQ(str(who, "peer"), "127.0.0.1");
  auto r = u->call("broker.control", "whoami");
  ASSERT_EQ(code_of(r), "OK");
  EXPECT_EQ(str(*r, "actor"), key_fingerprint(unnamed.public_key));
  EXPECT_EQ(str(*r, "actor").size(), 12u);
  // A key that is not an admin's has no say at all.
  EXPECT_EQ(code_of(client(&other)->call("broker.control", "whoami")), "UNAUTHORIZED");
  // primaryctl says the same.
  const std::string key_file = dir.file("alice");
  ASSERT_TRUE(write_curve_keypair(key_file, alice));
  const std::string out = run_capture({bin("primaryctl"), "--server", endpoint(data(), "front"), "--server-key",
                                       data() + "/keys/server.pub", "--client-key", key_file + ".key", "whoami"});
  EXPECT_NE(out.find("actor alice"), std::string::npos) << out;
}

TEST_F(SecureServer, EventsOnlyForAdmins) {
  const CurveKeypair admin = curve_keypair();
  const CurveKeypair other = curve_keypair();
  ASSERT_TRUE(admit(admin));
  zmq::socket_t admin_sub = subscriber(admin);
  zmq::socket_t other_sub = subscriber(other);
  auto c = client(&admin);
  Value reg = *c->call("license.control", "registration", {{"serial", Value("SN-EV")}});
  const std::string code = run_capture({bin("primary-vendor"), "unlock", "--key", dir.file("vendor/vendor.key"),
                                        "--registration", reg.find("registration_code")->as_str(),
                                        "--licenses", "100"});
  ASSERT_EQ(code_of(c->call("license.control", "unlock", {{"unlock_code", Value(code)}})), "OK");
  int admin_got = 0, other_got = 0;
  // Keep making events until the admin subscriber has joined (slow joiner).
  for (int i = 0; i < 50 && admin_got == 0; ++i) {
    c->call("license.control", "reserve", {{"computer", Value("ev-" + std::to_string(i))}});
    zmq::message_t m;
    while (admin_sub.recv(m, zmq::recv_flags::dontwait)) ++admin_got;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_GT(admin_got, 0);
  for (int i = 0; i < 20; ++i) {
    zmq::message_t m;
    if (other_sub.recv(m)) ++other_got;
  }
  EXPECT_EQ(other_got, 0);
}

TEST_F(SecureServer, ReadableSecretKeyRefusesToStart) {
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_exit(10s).has_value());
  ::chmod((data() + "/keys/server.key").c_str(), 0644);
  Process again = Process::start({bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", data(), "--front", "tcp://127.0.0.1:*",
                                  "--events", "tcp://127.0.0.1:*"},
                                 {}, dir.file("again.log"));
  auto rc = again.wait_exit(10s);
  ASSERT_TRUE(rc.has_value());
  EXPECT_NE(*rc, 0);
  const std::string log = read_file(dir.file("again.log"));
  EXPECT_NE(log.find("readable by group or others"), std::string::npos) << log;
}

}  // namespace
}  // namespace primary::test
