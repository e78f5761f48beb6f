// The broker against real processes: primary-broker and primary-echo-worker
// started on port 0, spoken to over ZeroMQ exactly as peers would: round
// trips, error replies, load sharing, MMI, dead workers, deadlines, bounded
// queues, the privileged broker.control service, hostile input on both
// sockets, and the event relay.
#include <gtest/gtest.h>
#include <signal.h>
#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/client.hpp"
#include "common/codec.hpp"
#include "common/mdp.hpp"
#include "common/schema.hpp"
#include "tests/support/process.hpp"
#include "tests/support/raw_dealer.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kHeartbeat = 100ms;
constexpr int kLiveness = 3;  // the broker's default --heartbeat-liveness
constexpr auto kRequestTimeout = 1000ms;

long long ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// "key=value" lines of the broker's endpoints file.
std::map<std::string, std::string> parse_endpoints(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (auto eq = line.find('='); eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  return out;
}

// A reply's body decoded as a map; nil when it is not one.
Value decode(const std::string& body) {
  auto v = unpack_map(body);
  return v ? *v : Value();
}

// A raw DEALER on the front door, plus MDP client helpers.
class RawClient : public test::RawDealer {
 public:
  using RawDealer::RawDealer;

  // Sends an MDP/0.1 client request: "", MDPC01, service, body.
  void send(std::string_view service, std::string_view body) {
    send_frames({"", "MDPC01", std::string(service), std::string(body)});
  }

  // The body of the next well-formed MDP reply, decoded; nil on timeout or
  // on a malformed envelope (which fails the test).
  Value recv_reply(std::chrono::milliseconds timeout, std::string_view service) {
    auto frames = recv(timeout);
    if (!frames) return {};
    EXPECT_EQ(frames->size(), 4u);
    if (frames->size() != 4) return {};
    EXPECT_EQ((*frames)[0], "");
    EXPECT_EQ((*frames)[1], "MDPC01");
    EXPECT_EQ((*frames)[2], service);
    return decode((*frames)[3]);
  }
};

// A hand-made worker connection: recv() skips the broker's HEARTBEATs.
class RawWorker : public test::RawDealer {
 public:
  using RawDealer::RawDealer;
  std::optional<std::vector<std::string>> recv(std::chrono::milliseconds timeout) {
    const auto until = Clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      auto f = RawDealer::recv(std::max(left, std::chrono::milliseconds(0)));
      if (!f || f->size() != 3 || (*f)[2] != std::string(1, '\x04')) return f;
    }
  }
};

class BrokerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (auto& w : workers_) w.kill();
    broker_.kill();
    if (HasFailure()) {
      std::cerr << "---- broker log ----\n" << test::read_file(dir_.file("broker.log"));
      std::cerr << "---- worker log ----\n" << test::read_file(dir_.file("worker.log"));
    }
  }

  // Starts primary-broker on port 0 with the test's short timings; fills
  // front_ and workers_ep_ from its endpoints file.
  void start_broker(std::vector<std::string> extra = {},
                    std::chrono::milliseconds heartbeat = kHeartbeat,
                    std::chrono::milliseconds request_timeout = kRequestTimeout) {
    std::vector<std::string> argv = {test::bin("primary-broker"), "--insecure",
                                     "--front", "tcp://127.0.0.1:*",
                                     "--events", "tcp://127.0.0.1:*",
                                     "--workers-endpoint", "tcp://127.0.0.1:*",
                                     "--event-sink", "tcp://127.0.0.1:*",
                                     "--endpoints-file", dir_.file("ep"),
                                     "--heartbeat-ms", std::to_string(heartbeat.count()),
                                     "--request-timeout-ms", std::to_string(request_timeout.count())};
    argv.insert(argv.end(), extra.begin(), extra.end());
    broker_ = test::Process::start(argv, {}, dir_.file("broker.log"));
    std::map<std::string, std::string> eps;
    ASSERT_TRUE(test::wait_until(
        [&] {
          eps = parse_endpoints(test::read_file(dir_.file("ep")));
          return eps.count("front") && eps.count("workers") && eps.count("events") &&
                 eps.count("event-sink");
        },
        10s))
        << "the broker wrote no endpoints file";
    front_ = eps["front"];
    workers_ep_ = eps["workers"];
    events_ = eps["events"];
    sink_ = eps["event-sink"];
  }

  // Starts one primary-echo-worker connected to the broker.
  test::Process& start_echo(std::chrono::milliseconds heartbeat = kHeartbeat) {
    workers_.push_back(test::Process::start(
        {test::bin("primary-echo-worker"), "--broker", workers_ep_, "--heartbeat-ms",
         std::to_string(heartbeat.count())},
        {}, dir_.file("worker.log")));
    return workers_.back();
  }

  MdpClient client(int timeout_ms = 3000) {
    ClientOptions o;
    o.endpoints = {front_};
    o.timeout_ms = timeout_ms;
    return MdpClient(ctx_, o);
  }

  // One request; the decoded reply map (nil on timeout or a non-map reply).
  Value call(const std::string& service, const std::string& op, Value::Map fields = {},
             int timeout_ms = 3000) {
    auto c = client(timeout_ms);
    auto r = c.call(service, op, std::move(fields));
    return r ? *r : Value();
  }

  // The MMI answer for `service` ("200"/"404"), or "" on timeout.
  std::string mmi(const std::string& mmi_service, const std::string& body) {
    auto c = client(2000);
    auto r = c.request(mmi_service, body);
    return r ? *r : "";
  }

  // Workers of `service` according to broker.control; -1 when it did not answer.
  int64_t worker_count(const std::string& service) {
    Value r = call("broker.control", "workers");
    const Value* services = r.find("services");
    if (!services) return -1;
    const Value* n = services->find(service);
    return (n && n->is_int()) ? n->as_int() : 0;
  }

  // Waits until the broker counts exactly `n` echo workers.
  bool wait_for_echo_workers(int64_t n) {
    return test::wait_until([&] { return worker_count("echo") == n; }, 10s, 20ms);
  }

  test::TempDir dir_{"pbt"};
  zmq::context_t ctx_{1};
  test::Process broker_;
  std::vector<test::Process> workers_;
  std::string front_, workers_ep_, events_, sink_;
};

TEST_F(BrokerTest, RoundTripEchoesPayloadAndRid) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_echo();
  ASSERT_TRUE(wait_for_echo_workers(1));

  Value r = call("echo", "echo", {{"payload", Value("hi")}, {"rid", Value(17)}});
  EXPECT_TRUE(test::ok(r)) << to_json(r);
  EXPECT_EQ(test::str(r, "payload"), "hi");
  ASSERT_NE(r.find("rid"), nullptr) << to_json(r);
  EXPECT_EQ(*r.find("rid"), Value(17));

  // Any rid comes back unchanged, a map included.
  Value rid(Value::Map{{"n", Value(1)}, {"s", Value("x")}});
  r = call("echo", "echo", {{"payload", Value(Value::Array{Value(1), Value(2)})}, {"rid", rid}});
  EXPECT_TRUE(test::ok(r)) << to_json(r);
  ASSERT_NE(r.find("rid"), nullptr);
  EXPECT_EQ(*r.find("rid"), rid);
}

// SIGHUP (re-read the admin keys) arrives while the broker is busy in
// libzmq calls; an interrupted call throws, and used to abort the broker.
// Signals now arrive only while it sleeps in ppoll().
TEST_F(BrokerTest, ManySighupsUnderLoadNeverStopTheBroker) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_echo();
  ASSERT_TRUE(wait_for_echo_workers(1));
  const pid_t pid = broker_.pid();
  std::atomic<bool> done{false};
  std::thread signaller([&] {
    for (int i = 0; i < 20000 && !done.load(); ++i) {
      ::kill(pid, SIGHUP);
      std::this_thread::sleep_for(50us);
    }
  });
  int answered = 0;
  for (int i = 0; i < 400 && broker_.alive(); ++i)
    if (test::ok(call("echo", "echo", {{"payload", Value(i)}}))) ++answered;
  done = true;
  signaller.join();
  EXPECT_TRUE(broker_.alive()) << test::read_file(dir_.file("broker.log"));
  EXPECT_EQ(broker_.pid(), pid);
  EXPECT_EQ(answered, 400);
}

// In insecure mode the admin role is a loopback peer's, named "local".
TEST_F(BrokerTest, WhoamiInInsecureModeIsLocal) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  Value r = call("broker.control", "whoami", {{"actor", Value("someone else")}});
  ASSERT_TRUE(test::ok(r)) << to_json(r);
  EXPECT_EQ(test::str(r, "actor"), "local");
  EXPECT_EQ(test::str(r, "role"), "admin");
  EXPECT_EQ(test::str(r, "peer"), "127.0.0.1");
}

TEST_F(BrokerTest, UnknownOpAndBadBodiesAreErrorReplies) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_echo();
  ASSERT_TRUE(wait_for_echo_workers(1));
  RawClient raw(ctx_, front_);

  raw.send("echo", encode_request("nope", {{"rid", Value("r1")}}));
  Value r = raw.recv_reply(3s, "echo");
  EXPECT_EQ(test::str(r, "code"), "UNKNOWN_OP") << to_json(r);
  EXPECT_NE(test::str(r, "message").find("nope"), std::string::npos) << to_json(r);
  EXPECT_EQ(test::str(r, "rid"), "r1");

  raw.send("echo", pack(Value(5)));
  r = raw.recv_reply(3s, "echo");
  EXPECT_EQ(test::str(r, "code"), "BAD_REQUEST") << to_json(r);
  EXPECT_NE(test::str(r, "message").find("map"), std::string::npos) << to_json(r);

  std::string body = encode_request("echo", {{"payload", Value("truncated")}});
  body.pop_back();
  raw.send("echo", body);
  r = raw.recv_reply(3s, "echo");
  EXPECT_EQ(test::str(r, "code"), "BAD_REQUEST") << to_json(r);
  EXPECT_NE(test::str(r, "message").find("truncated"), std::string::npos) << to_json(r);

  // Just over the broker's 4 MiB --max-body: answered by the broker itself.
  raw.send("echo", encode_request("echo", {{"payload", Value(std::string((4 << 20) + 16, 'x'))}}));
  r = raw.recv_reply(5s, "echo");
  EXPECT_EQ(test::str(r, "code"), "BAD_REQUEST") << to_json(r);
  EXPECT_NE(test::str(r, "message").find("exceeds"), std::string::npos) << to_json(r);
}

// A 5 MiB body (over --max-body) gets BAD_REQUEST naming the problem, and the
// connection keeps working.
// DISABLED: fails today. The front socket's ZMQ_MAXMSGSIZE is max_body + 4096,
// so libzmq drops the connection on any larger frame before the broker sees
// it; the client gets no reply at all (see the report to the broker owner).
TEST_F(BrokerTest, OversizeBodyIsAnsweredBadRequest) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_echo();
  ASSERT_TRUE(wait_for_echo_workers(1));
  RawClient raw(ctx_, front_);

  raw.send("echo", encode_request("echo", {{"payload", Value(std::string(5 << 20, 'x'))}}));
  Value r = raw.recv_reply(5s, "echo");
  EXPECT_EQ(test::str(r, "code"), "BAD_REQUEST") << "5 MiB body: " << to_json(r);
  EXPECT_NE(test::str(r, "message").find("exceeds"), std::string::npos) << to_json(r);

  raw.send("echo", encode_request("echo", {{"payload", Value("after")}}));
  r = raw.recv_reply(3s, "echo");
  EXPECT_TRUE(test::ok(r)) << to_json(r);
  EXPECT_EQ(test::str(r, "payload"), "after");
}

TEST_F(BrokerTest, TwoWorkersServeInParallel) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_echo();
  start_echo();
  ASSERT_TRUE(wait_for_echo_workers(2));

  // 10 clients x 20 sleeps of 20 ms at once: with two idle-first workers
  // each serves a good share (each reply names the worker's pid).
  constexpr int kClients = 10, kPerClient = 20, kSleepMs = 20;
  std::mutex mu;
  std::map<int64_t, int> served;  // pid -> requests
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t)
    threads.emplace_back([&] {
      auto c = client(5000);
      for (int i = 0; i < kPerClient; ++i) {
        auto r = c.call("echo", "sleep", {{"ms", Value(kSleepMs)}});
        std::lock_guard<std::mutex> lock(mu);
        if (r && test::ok(*r) && r->find("pid")) ++served[r->find("pid")->as_int()];
      }
    });
  for (auto& t : threads) t.join();
  int total = 0;
  for (const auto& [pid, n] : served) total += n;
  EXPECT_EQ(total, kClients * kPerClient);
  ASSERT_EQ(served.size(), 2u) << "only one worker answered";
  for (const auto& [pid, n] : served)
    EXPECT_GE(n, kClients * kPerClient / 10) << "worker " << pid << " served " << n << " of " << total;
}

TEST_F(BrokerTest, MmiAnswersAndForgetsDeadWorker) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  test::Process& worker = start_echo();
  ASSERT_TRUE(wait_for_echo_workers(1));

  EXPECT_EQ(mmi("mmi.service", "echo"), "200");
  EXPECT_EQ(mmi("mmi.service", "nosuch"), "404");
  EXPECT_EQ(mmi("mmi.other", "echo"), "501");

  worker.signal(SIGKILL);
  const auto killed = Clock::now();
  ASSERT_TRUE(test::wait_until([&] { return mmi("mmi.service", "echo") == "404"; }, 5s, 20ms))
      << "mmi.service still says 200 for a dead worker";
  const auto limit = kHeartbeat.count() * (kLiveness + 1) + 500;
  EXPECT_LT(ms_since(killed), limit) << "the dead worker was noticed too late";
}

TEST_F(BrokerTest, WorkerKilledHoldingRequestGetsUnavailable) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  test::Process& worker = start_echo();
  ASSERT_TRUE(wait_for_echo_workers(1));
  RawClient raw(ctx_, front_);

  const auto sent = Clock::now();
  raw.send("echo", encode_request("sleep", {{"ms", Value(10000)}, {"rid", Value(7)}}));
  std::this_thread::sleep_for(50ms);  // the worker is now sleeping on it
  worker.signal(SIGKILL);
  Value r = raw.recv_reply(5s, "echo");
  EXPECT_EQ(test::str(r, "code"), "UNAVAILABLE") << to_json(r);
  ASSERT_NE(r.find("rid"), nullptr) << to_json(r);
  EXPECT_EQ(*r.find("rid"), Value(7));
  EXPECT_LT(ms_since(sent), 1500) << "the client waited too long for its dead worker";
}

// A worker connection that offers a credit (READY's extra frame) holds that
// many requests at once; each goes out with a tag, and each tagged REPLY
// reaches its own client, in whatever order they come back.
TEST_F(BrokerTest, CreditedWorkerHoldsSeveralRequestsAndRepliesFindTheirClients) {
  // A 5 s heartbeat: this hand-made worker sends none and must not expire.
  ASSERT_NO_FATAL_FAILURE(start_broker({}, 5000ms, 10000ms));
  RawWorker worker(ctx_, workers_ep_);
  worker.send_frames({"", "MDPW01", std::string(1, '\x01'), "echo", "3"});
  ASSERT_TRUE(wait_for_echo_workers(3)) << "the broker counts a worker's credit";

  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<RawClient>(ctx_, front_));
    clients.back()->send("echo", encode_request("echo", {{"rid", Value(i)}}));
  }
  // REQUEST: "", MDPW01, 0x02, client, meta, tag, "", body
  std::vector<std::vector<std::string>> held;
  while (held.size() < 3) {
    auto f = worker.recv(5s);
    ASSERT_TRUE(f) << "got " << held.size() << " of 3 requests";
    ASSERT_EQ(f->size(), 8u);
    EXPECT_EQ((*f)[2], std::string(1, '\x02'));
    EXPECT_EQ((*f)[5].size(), 8u) << "tag frame";
    held.push_back(*f);
  }
  EXPECT_FALSE(worker.recv(300ms)) << "a fourth request beyond the credit of 3";
  auto reply = [&](const std::vector<std::string>& req, const std::string& tag) {
    const Value body = decode(req[7]);
    worker.send_frames({"", "MDPW01", std::string(1, '\x03'), req[3], req[4], tag, "",
                        encode_reply(Reply::success({{"echoed", *body.find("rid")}}), *body.find("rid"))});
  };
  // Answer the last first: every client gets its own rid back.
  for (int k = 2; k >= 0; --k) reply(held[static_cast<size_t>(k)], held[static_cast<size_t>(k)][5]);
  auto fourth = worker.recv(5s);
  ASSERT_TRUE(fourth) << "the fourth request once credit came back";
  reply(*fourth, (*fourth)[5]);
  for (int i = 0; i < 4; ++i) {
    Value r = clients[static_cast<size_t>(i)]->recv_reply(5s, "echo");
    ASSERT_TRUE(test::ok(r)) << "client " << i << ": " << to_json(r);
    EXPECT_EQ(*r.find("rid"), Value(i));
    EXPECT_EQ(*r.find("echoed"), Value(i));
  }
  // A REPLY whose tag names nothing held: the connection is dropped.
  clients[0]->send("echo", encode_request("echo", {{"rid", Value(9)}}));
  auto f = worker.recv(5s);
  ASSERT_TRUE(f);
  reply(*f, std::string(8, '\x7f'));
  EXPECT_TRUE(wait_for_echo_workers(0)) << "a worker that replied with a wrong tag is still counted";
  EXPECT_EQ(test::str(clients[0]->recv_reply(5s, "echo"), "code"), "UNAVAILABLE");
}

// Negotiated extensions (docs/protocol.md "Plain and extended workers"): a
// READY of exactly RFC 7's frames gets exactly RFC 7's REQUEST, without the
// peer's role or address, and its RFC 7 REPLY reaches the client; a READY
// with a credit frame, "1" included, gets the meta and tag frames.
TEST_F(BrokerTest, PlainRfc7WorkerGetsExactlyRfc7Frames) {
  // A 5 s heartbeat: these hand-made workers send none and must not expire.
  ASSERT_NO_FATAL_FAILURE(start_broker({}, 5000ms, 10000ms));
  RawWorker plain(ctx_, workers_ep_);
  plain.send_frames({"", "MDPW01", std::string(1, '\x01'), "echo"});
  ASSERT_TRUE(wait_for_echo_workers(1));
  RawClient client(ctx_, front_);  // loopback, insecure: the admin role
  for (int i = 0; i < 3; ++i) {
    client.send("echo", encode_request("echo", {{"payload", Value(i * 10)}, {"rid", Value(i)}}));
    // RFC 7 REQUEST: "", MDPW01, 0x02, client address, "", body
    auto req = plain.recv(5s);
    ASSERT_TRUE(req) << "request " << i;
    ASSERT_EQ(req->size(), 6u) << "request " << i;
    EXPECT_EQ((*req)[1], "MDPW01");
    EXPECT_EQ((*req)[2], std::string(1, '\x02'));
    EXPECT_FALSE((*req)[3].empty());
    EXPECT_EQ((*req)[4], "");
    for (const auto& frame : *req) {
      EXPECT_EQ(frame.find("admin"), std::string::npos) << "a plain worker learnt the client's role";
      EXPECT_EQ(frame.find("127.0.0.1"), std::string::npos) << "a plain worker learnt the client's address";
    }
    const Value body = decode((*req)[5]);
    ASSERT_EQ(*body.find("payload"), Value(i * 10));
    // RFC 7 REPLY: "", MDPW01, 0x03, client address, "", body
    plain.send_frames({"", "MDPW01", std::string(1, '\x03'), (*req)[3], "",
                       encode_reply(Reply::success({{"payload", Value(i * 10 + 1)}}), *body.find("rid"))});
    Value r = client.recv_reply(5s, "echo");
    ASSERT_TRUE(test::ok(r)) << to_json(r);
    EXPECT_EQ(*r.find("rid"), Value(i));
    EXPECT_EQ(*r.find("payload"), Value(i * 10 + 1));
  }
  // A plain worker's REPLY must be RFC 7's shape: one with extra envelope
  // frames is a protocol error (DISCONNECT; the client gets UNAVAILABLE).
  client.send("echo", encode_request("echo", {{"rid", Value(7)}}));
  auto req = plain.recv(5s);
  ASSERT_TRUE(req);
  ASSERT_EQ(req->size(), 6u);
  plain.send_frames({"", "MDPW01", std::string(1, '\x03'), (*req)[3], "meta", std::string(8, '\0'), "", (*req)[5]});
  auto bye = plain.recv(5s);
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->back(), std::string(1, '\x05'));
  EXPECT_EQ(test::str(client.recv_reply(5s, "echo"), "code"), "UNAVAILABLE");
  ASSERT_TRUE(wait_for_echo_workers(0));

  // An explicit credit of 1 opts in: meta ("<address> <role>") and tag.
  RawWorker extended(ctx_, workers_ep_);
  extended.send_frames({"", "MDPW01", std::string(1, '\x01'), "echo", "1"});
  ASSERT_TRUE(wait_for_echo_workers(1));
  client.send("echo", encode_request("echo", {{"rid", Value(8)}}));
  auto ext = extended.recv(5s);
  ASSERT_TRUE(ext);
  ASSERT_EQ(ext->size(), 8u);
  EXPECT_EQ(decode_peer((*ext)[4]).admin, true) << (*ext)[4];
  EXPECT_EQ(decode_peer((*ext)[4]).actor, "local") << (*ext)[4];  // insecure mode: a loopback admin
  EXPECT_EQ((*ext)[5].size(), 8u) << "tag frame";
  extended.send_frames({"", "MDPW01", std::string(1, '\x03'), (*ext)[3], (*ext)[4], (*ext)[5], "",
                        encode_reply(Reply::success({}), Value(8))});
  EXPECT_TRUE(test::ok(client.recv_reply(5s, "echo")));
}

// A worker's READY is only heard on the workers endpoint, whatever its
// kind: on the front door a plain RFC 7 READY registers nothing.
TEST_F(BrokerTest, PlainReadyOnTheFrontDoorRegistersNothing) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  RawClient intruder(ctx_, front_);
  intruder.send_frames({"", "MDPW01", std::string(1, '\x01'), "echo"});
  auto f = intruder.recv(5s);
  ASSERT_TRUE(f);
  ASSERT_EQ(f->size(), 4u);
  EXPECT_EQ(test::str(decode(f->back()), "code"), "BAD_REQUEST");
  EXPECT_EQ(worker_count("echo"), 0);
  EXPECT_EQ(mmi("mmi.service", "echo"), "404");
}

// Worker batches (docs/protocol.md): a worker whose READY ends with "batch"
// gets requests many to a REQUESTS frame and answers many to a REPLIES
// frame; every reply reaches its own client, in any order.
TEST_F(BrokerTest, BatchingWorkerGetsRequestsTogetherAndRepliesFindTheirClients) {
  ASSERT_NO_FATAL_FAILURE(start_broker({}, 5000ms, 10000ms));
  RawWorker worker(ctx_, workers_ep_);
  worker.send_frames({"", "MDPW01", std::string(1, '\x01'), "echo", "5", "batch"});
  ASSERT_TRUE(wait_for_echo_workers(5));

  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(std::make_unique<RawClient>(ctx_, front_));
  // REQUESTS: "", MDPW01, 0x06, batch. The frames are kept (in a deque,
  // which never moves them): the entries point into them.
  std::deque<std::string> frames;
  auto take = [&](size_t n, std::vector<mdp::BatchEntry>& held, size_t& messages) {
    std::vector<mdp::BatchEntry> part;
    messages = 0;
    while (held.size() < n) {
      auto f = worker.recv(5s);
      ASSERT_TRUE(f) << "got " << held.size() << " of " << n << " requests";
      ASSERT_EQ(f->size(), 4u);
      ASSERT_EQ((*f)[2], std::string(1, '\x06')) << "a batching worker gets REQUESTS";
      frames.push_back((*f)[3]);
      ASSERT_TRUE(mdp::parse_batch(frames.back(), true, part));
      held.insert(held.end(), part.begin(), part.end());
      ++messages;
    }
  };
  auto answer = [&](const std::vector<mdp::BatchEntry>& reqs, const std::vector<std::string_view>& tags) {
    std::string box;
    for (size_t k = 0; k < reqs.size(); ++k) {
      const Value body = decode(std::string(reqs[k].body));
      const std::string reply = encode_reply(Reply::success({{"echoed", *body.find("rid")}}), *body.find("rid"));
      mdp::append_entry(box, {reqs[k].client, {}, tags[k], reply}, false);
    }
    worker.send_frames({"", "MDPW01", std::string(1, '\x07'), box});
  };
  auto tags_of = [](const std::vector<mdp::BatchEntry>& reqs) {
    std::vector<std::string_view> tags;
    for (const auto& e : reqs) tags.push_back(e.tag);
    return tags;
  };

  for (int i = 0; i < 5; ++i) clients[static_cast<size_t>(i)]->send("echo", encode_request("echo", {{"rid", Value(i)}}));
  std::vector<mdp::BatchEntry> first, second;
  size_t messages = 0;
  ASSERT_NO_FATAL_FAILURE(take(5, first, messages));
  for (const auto& e : first) {
    EXPECT_EQ(e.tag.size(), 8u);
    EXPECT_TRUE(decode_peer(e.meta).actor == "local" && decode_peer(e.meta).admin) << e.meta;
  }
  // Five more wait in the broker: the credit is used up.
  for (int i = 5; i < 10; ++i) clients[static_cast<size_t>(i)]->send("echo", encode_request("echo", {{"rid", Value(i)}}));
  EXPECT_FALSE(worker.recv(300ms)) << "a request beyond the credit of 5";
  // One REPLIES frame answers all five, last first; the five credits come
  // free together and the five waiting requests go out in one REQUESTS.
  std::vector<mdp::BatchEntry> reversed(first.rbegin(), first.rend());
  answer(reversed, tags_of(reversed));
  ASSERT_NO_FATAL_FAILURE(take(5, second, messages));
  EXPECT_EQ(messages, 1u) << "five requests dispatched together came in several messages";
  answer(second, tags_of(second));
  for (int i = 0; i < 10; ++i) {
    Value r = clients[static_cast<size_t>(i)]->recv_reply(5s, "echo");
    ASSERT_TRUE(test::ok(r)) << "client " << i << ": " << to_json(r);
    EXPECT_EQ(*r.find("rid"), Value(i));
    EXPECT_EQ(*r.find("echoed"), Value(i));
  }

  // Two requests held; a REPLIES frame answers one, then names it again: its
  // client has the answer, the worker is dropped, and the other client is
  // answered UNAVAILABLE.
  clients[0]->send("echo", encode_request("echo", {{"rid", Value(10)}}));
  clients[1]->send("echo", encode_request("echo", {{"rid", Value(11)}}));
  std::vector<mdp::BatchEntry> two;
  ASSERT_NO_FATAL_FAILURE(take(2, two, messages));
  const mdp::BatchEntry once = decode(std::string(two[0].body)).find("rid")->as_int() == 10 ? two[0] : two[1];
  answer({once, once}, {once.tag, once.tag});
  Value a = clients[0]->recv_reply(5s, "echo"), b = clients[1]->recv_reply(5s, "echo");
  EXPECT_TRUE(test::ok(a)) << to_json(a);
  EXPECT_EQ(test::str(b, "code"), "UNAVAILABLE") << to_json(b);
  EXPECT_TRUE(wait_for_echo_workers(0)) << "a worker that answered a request twice is still counted";
}

// Bad batch frames: each disconnects its worker (answering what it held);
// a READY whose last frame is not "batch" is refused.
TEST_F(BrokerTest, BadBatchFramesDisconnectTheWorker) {
  ASSERT_NO_FATAL_FAILURE(start_broker({}, 5000ms, 10000ms));
  for (const std::string last : {"Batch", "batch ", "", "1"}) {
    RawWorker worker(ctx_, workers_ep_);
    worker.send_frames({"", "MDPW01", std::string(1, '\x01'), "echo", "4", last});
    auto f = worker.recv(5s);
    ASSERT_TRUE(f) << "READY ending '" << last << "': no DISCONNECT";
    EXPECT_EQ(f->back(), std::string(1, '\x05'));
  }
  RawClient client(ctx_, front_);
  std::string good;
  mdp::append_entry(good, {"client", {}, std::string(8, 'x'), "body"}, false);
  const std::vector<std::pair<std::string, std::vector<std::string>>> bad = {
      {"empty frame", {""}},
      {"truncated", {good.substr(0, good.size() - 1)}},
      {"trailing byte", {good + "x"}},
      {"two frames", {good, good}},
      {"no request held", {good}},
  };
  for (const auto& [what, frames] : bad) {
    RawWorker worker(ctx_, workers_ep_);
    worker.send_frames({"", "MDPW01", std::string(1, '\x01'), "echo", "4", "batch"});
    ASSERT_TRUE(wait_for_echo_workers(4)) << what;
    client.send("echo", encode_request("echo", {{"rid", Value(1)}}));
    auto req = worker.recv(5s);
    ASSERT_TRUE(req) << what;
    std::vector<std::string> msg = {"", "MDPW01", std::string(1, '\x07')};
    msg.insert(msg.end(), frames.begin(), frames.end());
    worker.send_frames(msg);
    auto f = worker.recv(5s);
    ASSERT_TRUE(f) << what << ": no DISCONNECT";
    EXPECT_EQ(f->back(), std::string(1, '\x05')) << what;
    EXPECT_EQ(test::str(client.recv_reply(5s, "echo"), "code"), "UNAVAILABLE") << what;
    EXPECT_TRUE(wait_for_echo_workers(0)) << what;
  }
  // REPLIES from a connection that did not ask for batches.
  RawWorker plain(ctx_, workers_ep_);
  plain.send_frames({"", "MDPW01", std::string(1, '\x01'), "echo", "4"});
  ASSERT_TRUE(wait_for_echo_workers(4));
  plain.send_frames({"", "MDPW01", std::string(1, '\x07'), good});
  auto f = plain.recv(5s);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->back(), std::string(1, '\x05'));
  EXPECT_TRUE(wait_for_echo_workers(0));
}

// Requests go to the least loaded connection: a burst spreads evenly over
// two credited workers instead of filling the first one's credit, and a
// worker still holding its share gets nothing more while the other has room.
TEST_F(BrokerTest, RequestsGoToTheLeastLoadedCreditedWorker) {
  ASSERT_NO_FATAL_FAILURE(start_broker({}, 5000ms, 10000ms));
  RawWorker a(ctx_, workers_ep_), b(ctx_, workers_ep_);
  a.send_frames({"", "MDPW01", std::string(1, '\x01'), "echo", "8"});
  b.send_frames({"", "MDPW01", std::string(1, '\x01'), "echo", "8"});
  ASSERT_TRUE(wait_for_echo_workers(16));
  RawClient client(ctx_, front_);
  auto take = [](RawWorker& w, size_t n, std::vector<std::vector<std::string>>& out) {
    while (out.size() < n) {
      auto f = w.recv(300ms);
      if (!f) return;
      out.push_back(*f);
    }
  };
  for (int i = 0; i < 8; ++i) client.send("echo", encode_request("echo", {{"rid", Value(i)}}));
  std::vector<std::vector<std::string>> at_a, at_b;
  take(a, 8, at_a);
  take(b, 8, at_b);
  EXPECT_EQ(at_a.size(), 4u) << "a burst of 8 over two workers of credit 8";
  EXPECT_EQ(at_b.size(), 4u);
  // a answers its four; b still holds four, so the next four all go to a.
  for (const auto& req : at_a) {
    const Value body = decode(req[7]);
    a.send_frames({"", "MDPW01", std::string(1, '\x03'), req[3], req[4], req[5], "",
                   encode_reply(Reply::success({}), *body.find("rid"))});
  }
  for (size_t k = 0; k < at_a.size(); ++k) ASSERT_TRUE(test::ok(client.recv_reply(5s, "echo")));
  for (int i = 8; i < 12; ++i) client.send("echo", encode_request("echo", {{"rid", Value(i)}}));
  std::vector<std::vector<std::string>> more_a, more_b;
  take(a, 4, more_a);
  take(b, 1, more_b);
  EXPECT_EQ(more_a.size(), 4u) << "the idle worker takes the new requests";
  EXPECT_TRUE(more_b.empty()) << "the busy worker got one of them";
}

TEST_F(BrokerTest, BadCreditsAreRefused) {
  ASSERT_NO_FATAL_FAILURE(start_broker({}, 5000ms, 10000ms));
  for (const std::string credit : {"0", "1025", "99999", "-1", "", "3x", " 3"}) {
    RawWorker worker(ctx_, workers_ep_);
    worker.send_frames({"", "MDPW01", std::string(1, '\x01'), "echo", credit});
    auto f = worker.recv(5s);
    ASSERT_TRUE(f) << "credit '" << credit << "': no DISCONNECT";
    EXPECT_EQ(f->back(), std::string(1, '\x05')) << "credit '" << credit << "'";
  }
  EXPECT_EQ(worker_count("echo"), 0);
}

// Every request a credited worker held when it died is answered.
TEST_F(BrokerTest, WorkerKilledHoldingSeveralRequestsAnswersEach) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  workers_.push_back(test::Process::start({test::bin("primary-echo-worker"), "--broker", workers_ep_,
                                           "--heartbeat-ms", std::to_string(kHeartbeat.count()), "--slots", "4"},
                                          {}, dir_.file("worker.log")));
  ASSERT_TRUE(wait_for_echo_workers(4));
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<RawClient>(ctx_, front_));
    clients.back()->send("echo", encode_request("sleep", {{"ms", Value(20000)}, {"rid", Value(i)}}));
  }
  ASSERT_TRUE(test::wait_until(
      [&] {
        Value st = call("broker.control", "stats");
        const Value* svc = st.find("services") ? st.find("services")->find("echo") : nullptr;
        const Value* routed = svc ? svc->find("routed") : nullptr;
        return routed && routed->is_int() && routed->as_int() == 4;
      },
      10s, 20ms))
      << "the four requests never reached the worker";
  workers_.back().signal(SIGKILL);
  for (int i = 0; i < 4; ++i) {
    Value r = clients[static_cast<size_t>(i)]->recv_reply(10s, "echo");
    EXPECT_EQ(test::str(r, "code"), "UNAVAILABLE") << "client " << i << ": " << to_json(r);
    EXPECT_EQ(r.find("rid") ? *r.find("rid") : Value(), Value(i));
  }
}

// A worker busy for longer than heartbeat * liveness is alive, not lost: its
// client must get the answer, not UNAVAILABLE.
// DISABLED: fails today. The worker runtime runs the handler on its only
// thread and sends no HEARTBEAT meanwhile; the broker expires workers that
// hold a request like idle ones, answers UNAVAILABLE, then DISCONNECTs the
// worker for its "unexpected" REPLY; the worker, back from the handler, also
// finds its broker_expiry passed and reopens its socket after a backoff.
TEST_F(BrokerTest, SlowButHealthyWorkerIsNotDeclaredDead) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_echo();
  ASSERT_TRUE(wait_for_echo_workers(1));

  const int ms = static_cast<int>(kHeartbeat.count()) * kLiveness * 3;
  Value r = call("echo", "sleep", {{"ms", Value(ms)}}, 5000);
  EXPECT_TRUE(test::ok(r)) << "sleep " << ms << " ms with heartbeat " << kHeartbeat.count()
                           << " ms: " << to_json(r);
  // And the next request is served at once, not after a reconnect.
  const auto start = Clock::now();
  r = call("echo", "echo", {{"payload", Value("next")}}, 5000);
  EXPECT_TRUE(test::ok(r)) << to_json(r);
  EXPECT_LT(ms_since(start), 200);
}

TEST_F(BrokerTest, NoWorkerMeansUnavailableAfterTheRequestTimeout) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  RawClient raw(ctx_, front_);

  const auto sent = Clock::now();
  raw.send("echo", encode_request("echo", {{"rid", Value(3)}}));
  Value r = raw.recv_reply(5s, "echo");
  const auto elapsed = ms_since(sent);
  EXPECT_EQ(test::str(r, "code"), "UNAVAILABLE") << to_json(r);
  ASSERT_NE(r.find("rid"), nullptr) << to_json(r);
  EXPECT_EQ(*r.find("rid"), Value(3));
  EXPECT_GE(elapsed, kRequestTimeout.count() * 9 / 10) << "answered before the request timeout";
  EXPECT_LT(elapsed, kRequestTimeout.count() + 700) << "answered long after the request timeout";

  // A service nobody declared is refused at once.
  raw.send("nosuch", encode_request("echo"));
  r = raw.recv_reply(5s, "nosuch");
  EXPECT_EQ(test::str(r, "code"), "UNAVAILABLE") << to_json(r);
}

TEST_F(BrokerTest, FullQueueAnswersBusyWithRetryAfter) {
  ASSERT_NO_FATAL_FAILURE(start_broker({"--queue-limit", "5"}));
  start_echo();
  ASSERT_TRUE(wait_for_echo_workers(1));
  RawClient raw(ctx_, front_);

  constexpr int kRequests = 20;
  for (int i = 0; i < kRequests; ++i)
    raw.send("echo", encode_request("sleep", {{"ms", Value(50)}, {"rid", Value(i)}}));
  int ok = 0, busy = 0, other = 0;
  for (int i = 0; i < kRequests; ++i) {
    Value r = raw.recv_reply(5s, "echo");
    if (r.is_nil()) break;
    EXPECT_NE(r.find("rid"), nullptr) << to_json(r);
    if (test::ok(r)) {
      ++ok;
    } else if (test::str(r, "code") == "BUSY") {
      ++busy;
      const Value* retry = r.find("retry_after_s");
      ASSERT_NE(retry, nullptr) << to_json(r);
      ASSERT_TRUE(retry->is_int()) << to_json(r);
      EXPECT_GT(retry->as_int(), 0);
    } else {
      ++other;
      ADD_FAILURE() << "unexpected reply " << to_json(r);
    }
  }
  EXPECT_EQ(ok + busy + other, kRequests) << "some requests were never answered";
  EXPECT_GT(busy, 0);
  EXPECT_GE(ok, 1);
  EXPECT_LE(ok, 6 + 1) << "more served than one in progress plus a queue of 5";
}

TEST_F(BrokerTest, BrokerControlListsWorkersForLoopback) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_echo();
  start_echo();
  ASSERT_TRUE(wait_for_echo_workers(2));

  Value r = call("broker.control", "workers", {{"rid", Value(9)}});
  EXPECT_TRUE(test::ok(r)) << to_json(r);
  ASSERT_NE(r.find("services"), nullptr) << to_json(r);
  EXPECT_EQ(r.find("services")->find("echo") ? *r.find("services")->find("echo") : Value(),
            Value(2))
      << to_json(r);
  ASSERT_NE(r.find("rid"), nullptr);
  EXPECT_EQ(*r.find("rid"), Value(9));

  r = call("broker.control", "nope");
  EXPECT_EQ(test::str(r, "code"), "UNKNOWN_OP") << to_json(r);
}

// One hostile message for the front door, by kind.
std::vector<std::string> hostile_message(int kind, std::mt19937& rng) {
  auto bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
  };
  auto small = [&](size_t max) { return bytes(rng() % (max + 1)); };
  const std::string body = encode_request("echo", {{"payload", Value("evil")}});
  switch (kind) {
    case 0: {  // random frame count, random bytes
      std::vector<std::string> f(1 + rng() % 8);
      for (auto& x : f) x = small(64);
      return f;
    }
    case 1: return {"", "MDPC02", "echo", body};
    case 2: return {"", "MDPW01", std::string(1, '\x01'), "echo"};
    case 3: return {""};
    case 4: return {"", "", "", ""};
    case 5: return {"", "MDPC01"};
    case 6: return {"", "MDPC01", "echo"};
    case 7: return {"", "MDPC01", "echo", small(200)};
    case 8: return {"", "MDPC01", "", body};
    case 9: return {"", "MDPC01", std::string(300, 's'), body};
    case 10: {  // a valid request followed by 1 to 100 extra frames
      std::vector<std::string> f = {"", "MDPC01", "echo", body};
      f.resize(5 + rng() % 100, "x");
      return f;
    }
    case 11: return {"", "MDPC01", small(20), body};
    case 12: return {"", "MDPC01", "mmi.service", small(300)};
    case 13: return {"", "MDPC01", "broker.control", small(100)};
    case 14: return {"front", "MDPC01", "echo", body};
    default: return {"", "MDPC01", "license", small(50)};
  }
}

// Heartbeat 1 s (liveness 3 s) and a 10 s request deadline instead of the
// fixture's 100 ms and 1 s: this test is about malformed input, and under
// ASan on a loaded 2-core machine the flood can keep the broker and the worker
// off the CPU for more than 300 ms, which the short settings would
// (correctly) report as a dead worker.
TEST_F(BrokerTest, HostileClientDoesNotDisturbOthers) {
  ASSERT_NO_FATAL_FAILURE(start_broker({}, 1000ms, 10000ms));
  start_echo(1000ms);
  ASSERT_TRUE(wait_for_echo_workers(1));

  std::atomic<int> good{0};
  std::thread honest([&] {
    auto c = client(15000);
    for (int i = 0; i < 500; ++i) {
      auto r = c.call("echo", "echo", {{"payload", Value(i)}, {"rid", Value(i)}});
      if (r && test::ok(*r) && r->find("payload") && *r->find("payload") == Value(i)) ++good;
      else ADD_FAILURE() << "honest request " << i << ": " << (r ? to_json(*r) : r.error().message);
    }
  });

  RawClient evil(ctx_, front_);
  std::mt19937 rng(20240611);
  int replies = 0, successes = 0;
  auto drain = [&](std::chrono::milliseconds wait) {
    while (auto frames = evil.recv(wait)) {
      ++replies;
      if (!frames->empty() && test::ok(decode(frames->back()))) ++successes;
      wait = 0ms;
    }
  };
  for (int i = 0; i < 10000; ++i) {
    evil.send_frames(hostile_message(static_cast<int>(rng() % 16), rng));
    if (i % 100 == 0) drain(0ms);
  }
  {
    std::mt19937 big_rng(1);
    std::string big(3 << 20, '\0');
    for (auto& c : big) c = static_cast<char>(big_rng() & 0xff);
    evil.send_frames({big});
    evil.send_frames({"", "MDPC01", "echo", big});
    evil.send_frames(std::vector<std::string>(5000, "frame"));
  }
  honest.join();
  drain(500ms);

  EXPECT_EQ(good.load(), 500);
  EXPECT_GT(replies, 0) << "malformed requests got no error replies at all";
  EXPECT_EQ(successes, 0) << "a malformed request was answered ok";
  EXPECT_TRUE(broker_.alive());
  Value r = call("echo", "echo", {{"payload", Value("still here")}});
  EXPECT_TRUE(test::ok(r)) << to_json(r);
  EXPECT_EQ(worker_count("echo"), 1) << "a client registered itself as a worker";
}

// Peak resident memory of a process in KiB (VmHWM), or -1.
long peak_rss_kib(pid_t pid) {
  std::istringstream in(test::read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("VmHWM:")) return std::stol(line.substr(6));
  return -1;
}

// One message of 150 frames of 3 MiB (each under the frame size limit) must
// not cost the broker 450 MiB: bad input costs bounded work.
// DISABLED: fails (peak RSS grows by about 450 MiB), and cannot pass with
// Debian's libzmq 4.3: it delivers a multipart message only once all of it
// has arrived (atomic delivery), buffering every part inside libzmq before
// the broker sees the first, and ZMQ_MAXMSGSIZE limits each frame, not the
// message. Kept as the reproduction of a known limit (docs/protocol.md).
TEST_F(BrokerTest, DISABLED_ManyLargeFramesCostBoundedMemory) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const long before = peak_rss_kib(broker_.pid());
  ASSERT_GT(before, 0);
  RawClient evil(ctx_, front_);
  std::vector<std::string> frames = {"", "MDPC01", "echo"};
  frames.resize(3 + 150, std::string(3 << 20, 'f'));
  evil.send_frames(frames);
  frames.clear();
  Value r = evil.recv_reply(20s, "echo");
  EXPECT_EQ(test::str(r, "code"), "BAD_REQUEST") << to_json(r);
  const long grown_mib = (peak_rss_kib(broker_.pid()) - before) / 1024;
  EXPECT_LT(grown_mib, 64) << "one message grew the broker by " << grown_mib << " MiB";
}

TEST_F(BrokerTest, HostileWorkerConnectionDoesNotDisturbTheRealWorker) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_echo();
  ASSERT_TRUE(wait_for_echo_workers(1));

  zmq::socket_t evil(ctx_, zmq::socket_type::dealer);
  evil.set(zmq::sockopt::linger, 0);
  evil.connect(workers_ep_);
  auto send = [&](const std::vector<std::string>& frames) {
    for (size_t i = 0; i < frames.size(); ++i)
      evil.send(zmq::buffer(frames[i]),
                i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  };
  const std::string W = "MDPW01";
  auto cmd = [](int c) { return std::string(1, static_cast<char>(c)); };
  std::mt19937 rng(7);
  auto bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
  };
  auto c = client(3000);
  for (int round = 0; round < 100; ++round) {
    send({bytes(1 + rng() % 40)});                               // garbage
    send({"", W});                                               // too short
    send({"", "MDPW02", cmd(1), "echo"});                        // wrong header
    send({"", W, "\x01\x01", "echo"});                           // two-byte command
    send({"", W, cmd(3), "client", "", "body"});                 // REPLY without request
    send({"", W, cmd(3), "client", "meta", "", "body"});         // same, with metadata
    send({"", W, cmd(1), ""});                                   // READY, empty service
    send({"", W, cmd(1)});                                       // READY, no service
    send({"", W, cmd(1), "mmi.service"});                        // READY for MMI
    send({"", W, cmd(1), "broker.control"});                     // READY for the broker
    send({"", W, cmd(1), std::string(300, 'x')});                // READY, name too long
    send({"", W, cmd(2), "client", "", "body"});                 // REQUEST from a worker
    send({"", W, cmd(4)});                                       // HEARTBEAT, unknown
    send({"", W, cmd(5)});                                       // DISCONNECT, unknown
    send({"", W, cmd(0x77), bytes(10)});                         // unknown command
    send({"", W, cmd(0), bytes(10)});                            // command 0
    send({"", W, cmd(1), "spare", "extra"});                     // READY, extra frames
    send({"", W, cmd(1), "spare", "2", "batch", "more"});        // READY, one frame too many
    send({"", W, cmd(6), bytes(20)});                            // REQUESTS from a worker
    send({"", W, cmd(7), bytes(20)});                            // REPLIES, unknown worker
    auto r = c.call("echo", "echo", {{"payload", Value(round)}});
    ASSERT_TRUE(r.ok()) << "round " << round << ": " << r.error().message;
    ASSERT_TRUE(test::ok(*r)) << "round " << round << ": " << to_json(*r);
    ASSERT_EQ(*r->find("payload"), Value(round));
  }
  EXPECT_TRUE(broker_.alive());
  EXPECT_EQ(worker_count("echo"), 1);
  EXPECT_EQ(worker_count("mmi.service"), 0);
  EXPECT_EQ(mmi("mmi.service", "echo"), "200");
}

TEST_F(BrokerTest, RelaysEventsFromSinkToSubscribers) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  zmq::socket_t pub(ctx_, zmq::socket_type::pub);
  pub.set(zmq::sockopt::linger, 0);
  pub.connect(sink_);
  zmq::socket_t sub(ctx_, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::subscribe, "");
  sub.connect(events_);

  const std::string body =
      pack(Value(Value::Map{{"id", Value("1-0")}, {"ts", Value(1700000000000LL)},
                            {"type", Value("test.topic")}}));
  std::vector<std::string> got;
  const auto deadline = Clock::now() + 5s;
  while (got.empty() && Clock::now() < deadline) {
    // Slow joiner: publish again until the subscription has propagated.
    pub.send(zmq::buffer(std::string("test.topic")), zmq::send_flags::sndmore);
    pub.send(zmq::buffer(body), zmq::send_flags::none);
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 100ms) <= 0) continue;
    for (;;) {
      zmq::message_t m;
      if (!sub.recv(m, zmq::recv_flags::none)) break;
      got.emplace_back(static_cast<const char*>(m.data()), m.size());
      if (!m.more()) break;
    }
  }
  ASSERT_EQ(got.size(), 2u) << "no event relayed within 5 s";
  EXPECT_EQ(got[0], "test.topic");
  EXPECT_EQ(got[1], body);
}

}  // namespace
}  // namespace primary
