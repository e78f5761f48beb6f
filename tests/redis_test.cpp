// The Redis client against a real, private redis-server: URLs, replies,
// pipelines, scripts, reconnects, durability across a crash, timeouts, AUTH.
#include "common/redis.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include "tests/support/redis_server.hpp"
#include "tests/support/util.hpp"

namespace primary {
namespace {

using test::RedisServer;
using Clock = std::chrono::steady_clock;

RedisUrl url_of(const std::string& text) {
  auto url = parse_redis_url(text);
  EXPECT_TRUE(url.ok()) << text << ": " << (url.ok() ? "" : url.error().message);
  return url.ok() ? *url : RedisUrl{};
}

TEST(RedisUrlTest, ParsesTcpUrls) {
  RedisUrl u = url_of("redis://localhost");
  EXPECT_EQ(u.kind, RedisUrl::Kind::Tcp);
  EXPECT_EQ(u.host, "localhost");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(u.password, "");

  u = url_of("redis://db.example:6380/2");
  EXPECT_EQ(u.host, "db.example");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 2);

  u = url_of("redis://:p%40ss%2Fw@10.0.0.1:7000/");
  EXPECT_EQ(u.host, "10.0.0.1");
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "p@ss/w");
  EXPECT_EQ(u.db, 0);

  u = url_of("redis://alice:s3cret@h:1/15");
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(u.db, 15);

  u = url_of("redis://[::1]:6390/1");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 6390);
  EXPECT_EQ(u.db, 1);
  EXPECT_EQ(url_of("redis://[fe80::1]").port, 6379);
}

TEST(RedisUrlTest, ParsesUnixUrls) {
  RedisUrl u = url_of("unix:///tmp/r.sock");
  EXPECT_EQ(u.kind, RedisUrl::Kind::Unix);
  EXPECT_EQ(u.path, "/tmp/r.sock");
  EXPECT_EQ(u.db, 0);

  u = url_of("unix:///var/run/redis/r.sock?db=3&password=a%26b&user=bob");
  EXPECT_EQ(u.path, "/var/run/redis/r.sock");
  EXPECT_EQ(u.db, 3);
  EXPECT_EQ(u.password, "a&b");
  EXPECT_EQ(u.user, "bob");

  u = url_of("unix://:pw@/tmp/r.sock?db=2");
  EXPECT_EQ(u.path, "/tmp/r.sock");
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(u.db, 2);

  u = url_of("unix://carol:pw@/tmp/r.sock");
  EXPECT_EQ(u.user, "carol");
  EXPECT_EQ(u.password, "pw");
}

TEST(RedisUrlTest, RejectsBadUrls) {
  for (const char* bad :
       {"", "localhost:6379", "http://h", "rediss://h", "redis://", "redis://:6379", "redis://h:0",
        "redis://h:70000", "redis://h:12x", "redis://h:", "redis://h/abc", "redis://h/-1",
        "redis://h/1/2", "redis://::1:6379", "redis://[::1", "redis://[::1]x",
        "redis://secret@h", "redis://:%zz@h", "redis://:%4@h", "unix://", "unix://relative/path",
        "unix:///", "unix:///tmp/s?db=x", "unix:///tmp/s?db", "unix:///tmp/s?foo=1",
        "unix://:pw@relative"}) {
    auto url = parse_redis_url(bad);
    ASSERT_FALSE(url.ok()) << "accepted: '" << bad << "'";
    EXPECT_EQ(url.error().code, Code::BadRequest) << bad;
    EXPECT_NE(url.error().message, "") << bad;
  }
  auto url = parse_redis_url("redis://topsecret@h");
  ASSERT_FALSE(url.ok());
  EXPECT_EQ(url.error().message.find("topsecret"), std::string::npos);
}

TEST(RedisUrlTest, RedactsPasswords) {
  EXPECT_EQ(redacted(url_of("redis://u:pw@[::1]:7/3")), "redis://u:***@[::1]:7/3");
  EXPECT_EQ(redacted(url_of("unix:///r.sock?password=pw")), "unix:///r.sock?db=0&password=***");
}

TEST(RedisScriptTest, ShaIsSha1OfTheSource) {
  EXPECT_EQ(Script("").sha(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(Script("abc").sha(), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(Script("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").sha(),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

class RedisTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.ok()); }
  Redis client(const std::string& suffix = "", RedisOptions options = {}) {
    return Redis(url_of(server_.url() + suffix), options);
  }
  RedisServer server_;
};

TEST_F(RedisTest, SetGetAndReplyTypes) {
  Redis r = client();
  EXPECT_FALSE(r.connected());
  EXPECT_TRUE(r.ping());
  EXPECT_TRUE(r.connected());

  auto set = r.command({"SET", "k", "v"});
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_TRUE(set->is_status("OK"));
  auto get = r.command({"GET", "k"});
  ASSERT_TRUE(get.ok());
  EXPECT_TRUE(get->is_str());
  EXPECT_EQ(get->str, "v");
  EXPECT_TRUE(r.command({"GET", "missing"})->is_nil());
  EXPECT_EQ(r.command({"INCRBY", "n", "41"})->integer, 41);

  // A Redis error reply is an answer, not a failure.
  auto wrong = r.command({"INCR", "k"});
  ASSERT_TRUE(wrong.ok());
  EXPECT_TRUE(wrong->is_error());
  EXPECT_NE(wrong->str.find("not an integer"), std::string::npos);

  ASSERT_TRUE(r.command(Redis::Argv{"RPUSH", "l", "a", "b"}).ok());
  auto range = r.command({"LRANGE", "l", "0", "-1"});
  ASSERT_TRUE(range.ok());
  ASSERT_TRUE(range->is_array());
  ASSERT_EQ(range->elements.size(), 2u);
  EXPECT_EQ(range->elements[1].str, "b");

  auto empty = r.command(Redis::Argv{});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, Code::BadRequest);
}

TEST_F(RedisTest, ValuesAndKeysAreBinarySafe) {
  Redis r = client();
  std::string value;
  for (int i = 0; i < 256; ++i) value += static_cast<char>(i);
  value += std::string("\r\n$3\r\n\0\0", 9);
  std::string key("k\0ey\r\n", 6);
  ASSERT_TRUE(r.command({"SET", key, value})->is_status("OK"));
  auto get = r.command({"GET", key});
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->str, value);
  EXPECT_TRUE(r.command({"GET", "k"})->is_nil());
}

TEST_F(RedisTest, PipelineReturnsAllRepliesInOrder) {
  Redis r = client();
  std::vector<Redis::Argv> commands;
  for (int i = 0; i < 1000; ++i) {
    if (i % 2 == 0)
      commands.push_back({"INCR", "counter"});
    else
      commands.push_back({"ECHO", "echo-" + std::to_string(i)});
  }
  commands[500] = {"NOSUCHCOMMAND"};
  auto replies = r.pipeline(commands);
  ASSERT_TRUE(replies.ok()) << replies.error().message;
  ASSERT_EQ(replies->size(), 1000u);
  for (int i = 0; i < 1000; ++i) {
    const RedisReply& rep = (*replies)[i];
    if (i == 500) {
      EXPECT_TRUE(rep.is_error());
    } else if (i % 2 == 0) {
      EXPECT_EQ(rep.integer, i < 500 ? i / 2 + 1 : i / 2) << i;
    } else {
      EXPECT_EQ(rep.str, "echo-" + std::to_string(i)) << i;
    }
  }
  EXPECT_TRUE(r.pipeline({})->empty());
}

// pipeline(commands, meanwhile): the commands are on their way before
// `meanwhile` runs (another connection sees their effect while it runs),
// it runs once, and when it throws, its exception comes out only after the
// replies are read: the connection stays in step.
TEST_F(RedisTest, PipelineRunsTheCallersWorkWhileRedisRunsTheCommands) {
  Redis r = client();
  Redis other = client();
  int runs = 0;
  bool seen = false;
  auto replies = r.pipeline({{"SET", "overlap", "1"}, {"INCR", "overlap"}}, [&] {
    ++runs;
    for (int i = 0; i < 500 && !seen; ++i) {
      auto v = other.command({"GET", "overlap"});
      seen = v.ok() && v->is_str() && v->str == "2";
      if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  ASSERT_TRUE(replies.ok()) << replies.error().message;
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(seen) << "the commands were still waiting while the caller's work ran";
  ASSERT_EQ(replies->size(), 2u);
  EXPECT_EQ((*replies)[1].integer, 2);

  EXPECT_THROW(r.pipeline({{"INCR", "overlap"}, {"ECHO", "late"}}, [] { throw std::runtime_error("mine"); }),
               std::runtime_error);
  auto next = r.command({"GET", "overlap"});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->str, "3") << "a reply of the interrupted pipeline was left unread";
  EXPECT_EQ(r.command({"ECHO", "now"})->str, "now");
}

TEST_F(RedisTest, ScriptsSurviveScriptFlush) {
  Redis r = client();
  Script incr("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  auto loaded = r.command({"SCRIPT", "LOAD", incr.source()});
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->str, incr.sha());

  EXPECT_EQ(r.eval(incr, {"s"}, {"5"})->integer, 5);
  ASSERT_TRUE(r.command({"SCRIPT", "FLUSH"})->is_status("OK"));
  auto again = r.eval(incr, {"s"}, {"5"});
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->integer, 10);

  // In a pipeline too: the NOSCRIPT call is loaded and sent again, once.
  ASSERT_TRUE(r.command({"SCRIPT", "FLUSH"})->is_status("OK"));
  auto replies = r.pipeline({r.script_call(incr, {"s"}, {"1"}), {"GET", "other"},
                             r.script_call(incr, {"t"}, {"7"})});
  ASSERT_TRUE(replies.ok()) << replies.error().message;
  ASSERT_EQ(replies->size(), 3u);
  EXPECT_EQ((*replies)[0].integer, 11);
  EXPECT_TRUE((*replies)[1].is_nil());
  EXPECT_EQ((*replies)[2].integer, 7);
  EXPECT_EQ(r.command({"GET", "s"})->str, "11");

  // A script error is an error reply.
  Script broken("return redis.call('NOSUCH')");
  auto err = r.eval(broken, {}, {});
  ASSERT_TRUE(err.ok());
  EXPECT_TRUE(err->is_error());
  Script bad_syntax("this is not lua");
  auto syntax = r.eval(bad_syntax, {}, {});
  ASSERT_TRUE(syntax.ok());
  EXPECT_TRUE(syntax->is_error());
}

TEST_F(RedisTest, ReconnectsAfterRestartAndKeepsAcknowledgedWrites) {
  Redis r = client();
  Script incr("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  ASSERT_TRUE(r.command({"SET", "durable", "yes"})->is_status("OK"));
  ASSERT_EQ(r.eval(incr, {"n"}, {"3"})->integer, 3);

  server_.kill9();
  ASSERT_TRUE(server_.restart());

  // The same object notices its connection died while idle and reconnects.
  auto get = r.command({"GET", "durable"});
  ASSERT_TRUE(get.ok()) << get.error().message;
  EXPECT_EQ(get->str, "yes");
  // The restarted server's script cache is empty.
  auto n = r.eval(incr, {"n"}, {"4"});
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(n->integer, 7);
}

TEST_F(RedisTest, DownServerIsUnavailableNotAHang) {
  Redis r = client("", RedisOptions{300, 300});
  ASSERT_TRUE(r.ping());
  server_.kill9();

  for (int i = 0; i < 2; ++i) {  // the idle connection, then a fresh connect
    auto start = Clock::now();
    auto got = r.command({"GET", "k"});
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().code, Code::Unavailable);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  }
  EXPECT_FALSE(r.ping());
  auto p = r.pipeline({{"PING"}});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, Code::Unavailable);

  ASSERT_TRUE(server_.restart());
  EXPECT_TRUE(r.ping());
}

TEST_F(RedisTest, ServerClosingMidWriteIsUnavailableNotSigpipe) {
  Redis r = client();
  // QUIT makes Redis close the socket while we are still writing 16 MB to it:
  // the write fails with EPIPE, which must not kill the test with SIGPIPE.
  std::vector<Redis::Argv> commands = {{"QUIT"}};
  for (int i = 0; i < 16; ++i) commands.push_back({"SET", "big", std::string(1 << 20, 'x')});
  auto got = r.pipeline(commands);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, Code::Unavailable);
  EXPECT_TRUE(r.ping());
}

TEST_F(RedisTest, StalledServerTimesOut) {
  Redis r = client("", RedisOptions{300, 300});
  ASSERT_TRUE(r.ping());
  ASSERT_EQ(kill(server_.pid(), SIGSTOP), 0);
  auto start = Clock::now();
  auto got = r.command({"GET", "k"});
  auto took = Clock::now() - start;
  ASSERT_EQ(kill(server_.pid(), SIGCONT), 0);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, Code::Unavailable);
  EXPECT_NE(got.error().message.find("no reply within 300 ms"), std::string::npos)
      << got.error().message;
  EXPECT_GE(took, std::chrono::milliseconds(250));
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_FALSE(r.connected());  // never reuse a connection with a reply in flight
  EXPECT_TRUE(r.ping());
}

TEST_F(RedisTest, WrongPasswordIsAnErrorValue) {
  Redis nopass = client("?password=nope");
  auto got = nopass.command({"PING"});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, Code::Unavailable);
  EXPECT_NE(got.error().message.find("AUTH"), std::string::npos) << got.error().message;
  EXPECT_EQ(got.error().message.find("nope"), std::string::npos) << got.error().message;

  Redis admin = client();
  ASSERT_TRUE(admin.command({"CONFIG", "SET", "requirepass", "s3cret"})->is_status("OK"));
  ASSERT_TRUE(admin.command({"ACL", "SETUSER", "alice", "on", ">pw", "~*", "+@all"})
                  ->is_status("OK"));

  EXPECT_FALSE(client().ping());
  EXPECT_FALSE(client("?password=wrong").ping());
  EXPECT_TRUE(client("?password=s3cret").ping());
  EXPECT_TRUE(client("?user=alice&password=pw").ping());
  EXPECT_FALSE(client("?user=alice&password=s3cret").ping());
  Redis alice(url_of("unix://alice:pw@" + server_.socket_path()));
  EXPECT_TRUE(alice.ping());
}

TEST_F(RedisTest, SelectsTheDatabase) {
  Redis db0 = client();
  Redis db1 = client("?db=1");
  ASSERT_TRUE(db1.command({"SET", "where", "one"})->is_status("OK"));
  EXPECT_TRUE(db0.command({"GET", "where"})->is_nil());
  db1.disconnect();  // the db is selected again on reconnect
  EXPECT_EQ(db1.command({"GET", "where"})->str, "one");

  Redis db99 = client("?db=99");  // beyond the 16 databases configured
  auto got = db99.command({"PING"});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("SELECT"), std::string::npos) << got.error().message;
}

TEST(RedisTcpTest, ConnectsOverTcpWithDb) {
  RedisServer server(RedisServer::Options{.tcp = true});
  ASSERT_TRUE(server.ok());
  Redis r(url_of(server.tcp_url() + "/2"));
  ASSERT_TRUE(r.command({"SET", "k", "tcp"})->is_status("OK"));
  Redis unix_db2(url_of(server.url() + "?db=2"));
  EXPECT_EQ(unix_db2.command({"GET", "k"})->str, "tcp");

  Redis closed(url_of("redis://127.0.0.1:1"), RedisOptions{300, 300});
  auto got = closed.command({"PING"});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, Code::Unavailable);
}

}  // namespace
}  // namespace primary

namespace primary {
namespace {

TEST(RedisReplies, TransientErrorsAreTheNotNowOnes) {
  auto err = [](std::string text) {
    RedisReply r;
    r.type = RedisReply::Type::Error;
    r.str = std::move(text);
    return r;
  };
  for (const char* t : {"LOADING Redis is loading the dataset in memory", "BUSY Redis is busy running a script",
                        "MASTERDOWN Link with MASTER is down", "READONLY You can't write against a read only replica.",
                        "NOREPLICAS Not enough good replicas to write.", "TRYAGAIN", "CLUSTERDOWN"})
    EXPECT_TRUE(transient_error(err(t))) << t;
  for (const char* t : {"ERR unknown command", "WRONGTYPE Operation against a key", "NOSCRIPT No matching script",
                        "ERR Error running script"})
    EXPECT_FALSE(transient_error(err(t))) << t;
  RedisReply ok;
  ok.type = RedisReply::Type::Status;
  ok.str = "LOADING";
  EXPECT_FALSE(transient_error(ok));
}

}  // namespace
}  // namespace primary

// Sentinel URLs, replicated writes (WAIT) and READONLY handling.
namespace primary {
namespace {

using test::RedisServer;
using Clock = std::chrono::steady_clock;

RedisUrl parsed_url(const std::string& text) {
  auto url = parse_redis_url(text);
  EXPECT_TRUE(url.ok()) << text << ": " << (url.ok() ? "" : url.error().message);
  return url.ok() ? *url : RedisUrl{};
}

TEST(RedisSentinelUrlTest, ParsesSentinelUrls) {
  RedisUrl u = parsed_url("sentinel://s1/mymaster");
  EXPECT_EQ(u.kind, RedisUrl::Kind::Sentinel);
  ASSERT_EQ(u.sentinels.size(), 1u);
  EXPECT_EQ(u.sentinels[0].host, "s1");
  EXPECT_EQ(u.sentinels[0].port, 26379);
  EXPECT_EQ(u.master_name, "mymaster");
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(u.password, "");
  EXPECT_EQ(u.sentinel_password, "");

  u = parsed_url("sentinel://10.0.0.1:26380,s2,[::1]:5000/primary.ps-1"
                   "?password=p%26w&db=3&sentinel_password=sp&sentinel_user=mon");
  ASSERT_EQ(u.sentinels.size(), 3u);
  EXPECT_EQ(u.sentinels[0].host, "10.0.0.1");
  EXPECT_EQ(u.sentinels[0].port, 26380);
  EXPECT_EQ(u.sentinels[1].host, "s2");
  EXPECT_EQ(u.sentinels[1].port, 26379);
  EXPECT_EQ(u.sentinels[2].host, "::1");
  EXPECT_EQ(u.sentinels[2].port, 5000);
  EXPECT_EQ(u.master_name, "primary.ps-1");
  EXPECT_EQ(u.password, "p&w");
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.db, 3);
  EXPECT_EQ(u.sentinel_password, "sp");
  EXPECT_EQ(u.sentinel_user, "mon");

  u = parsed_url("sentinel://alice:s%40cret@h1:1,h2:2/m");
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "s@cret");
  EXPECT_EQ(u.sentinels.size(), 2u);
  u = parsed_url("sentinel://h/m?user=bob&password=pw");
  EXPECT_EQ(u.user, "bob");
  EXPECT_EQ(u.password, "pw");
}

TEST(RedisSentinelUrlTest, RejectsBadSentinelUrls) {
  std::string many = "sentinel://";
  for (int i = 0; i < 33; ++i) many += (i ? ",h" : "h") + std::to_string(i);
  many += "/m";
  for (const std::string& bad : std::vector<std::string>{"sentinel://", "sentinel://h", "sentinel://h/", "sentinel:///m", "sentinel://h:0/m",
        "sentinel://h:99999/m", "sentinel://h:/m", "sentinel://h,/m", "sentinel://,h/m",
        "sentinel://h,,h2/m", "sentinel://::1:26379/m", "sentinel://[::1/m", "sentinel://h/m/x",
        "sentinel://h/m?db=x", "sentinel://h/m?db=-1", "sentinel://h/m?db", "sentinel://h/m?foo=1",
        "sentinel://h/m?password=%zz", "sentinel://secret@h/m", "sentinel://:pw@h/m?password=x",
        "sentinel://h/ma ster", "sentinel://h/m%41", "sentinel://h/" + std::string(129, 'm'),
        "sentinels://h/m", "redis://h,h2/0", many}) {
    auto url = parse_redis_url(bad);
    ASSERT_FALSE(url.ok()) << "accepted: '" << bad << "'";
    EXPECT_EQ(url.error().code, Code::BadRequest) << bad;
    EXPECT_NE(url.error().message, "") << bad;
  }
  auto url = parse_redis_url("sentinel://h/m?sentinel_password=%zz-topsecret");
  ASSERT_FALSE(url.ok());
  EXPECT_EQ(url.error().message.find("topsecret"), std::string::npos);
  EXPECT_NE(parse_redis_url("sentinel://h").error().message.find("master name"), std::string::npos);
}

TEST(RedisSentinelUrlTest, RedactsPasswords) {
  EXPECT_EQ(redacted(parsed_url("sentinel://u:pw@a:1,[::1]:2/m?db=2&sentinel_password=sp")),
            "sentinel://u:***@a:1,[::1]:2/m?db=2&sentinel_password=***");
  EXPECT_EQ(redacted(parsed_url("sentinel://a/m")), "sentinel://a:26379/m?db=0");
}

TEST(RedisSentinelUrlTest, NoSentinelAnsweringIsUnavailableNamingThemAll) {
  // Port 1 on loopback refuses at once: every Sentinel is tried, then an error.
  Redis r(parsed_url("sentinel://127.0.0.1:1,[::1]:1/mymaster"), RedisOptions{300, 300});
  auto got = r.command({"PING"});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, Code::Unavailable);
  EXPECT_NE(got.error().message.find("mymaster"), std::string::npos) << got.error().message;
  EXPECT_NE(got.error().message.find("127.0.0.1:1"), std::string::npos) << got.error().message;
  EXPECT_NE(got.error().message.find("[::1]:1"), std::string::npos) << got.error().message;
}

// A master and a replica over TCP; the replica has caught up when ready.
class ReplicatedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(master_.ok());
    ASSERT_TRUE(replica_.ok());
    Redis r(parsed_url(replica_.tcp_url()));
    Redis m(parsed_url(master_.tcp_url()));
    // Redis 7 waits 5 s for more replicas before a diskless sync; no need.
    ASSERT_TRUE(m.command({"CONFIG", "SET", "repl-diskless-sync-delay", "0"})->is_status("OK"));
    const std::string port = master_.tcp_url().substr(master_.tcp_url().rfind(':') + 1);
    ASSERT_TRUE(r.command({"REPLICAOF", "127.0.0.1", port})->is_status("OK"));
    ASSERT_TRUE(test::wait_until(
        [&] {
          auto info = r.command({"INFO", "replication"});
          auto role = m.command({"ROLE"});
          return info && info->str.find("master_link_status:up") != std::string::npos && role &&
                 role->is_array() && role->elements.size() > 2 && role->elements[2].elements.size() == 1;
        },
        std::chrono::seconds(10), std::chrono::milliseconds(20)));
  }
  void TearDown() override {
    if (stopped_) kill(replica_.pid(), SIGCONT);
  }
  void stop_replica() {
    ASSERT_EQ(kill(replica_.pid(), SIGSTOP), 0);
    stopped_ = true;
  }
  RedisServer master_{RedisServer::Options{.tcp = true}};
  RedisServer replica_{RedisServer::Options{.tcp = true}};
  bool stopped_ = false;
};

TEST_F(ReplicatedTest, ReplicatedWriteIsOnTheReplicaWhenAcknowledged) {
  for (int wait : {RedisOptions::kAutoReplicas, 1}) {
    RedisOptions o;
    o.wait_replicas = wait;
    Redis r(parsed_url(master_.tcp_url()), o);
    const std::string key = "k" + std::to_string(wait);
    auto got = r.pipeline_replicated({{"SET", key, "v"}, {"INCR", key + "n"}});
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_TRUE((*got)[0].is_status("OK"));
    EXPECT_EQ((*got)[1].integer, 1);
    // Acknowledged by the replica: it is there now, no waiting.
    Redis replica(parsed_url(replica_.tcp_url()));
    EXPECT_EQ(replica.command({"GET", key})->str, "v");
    EXPECT_EQ(replica.command({"GET", key + "n"})->str, "1");
  }
}

TEST_F(ReplicatedTest, ReplicaNotConfirmingIsUnavailableAfterTheTimeout) {
  stop_replica();  // still connected to the master, but never acknowledges
  for (int wait : {RedisOptions::kAutoReplicas, 1}) {
    RedisOptions o;
    o.wait_replicas = wait;
    o.wait_timeout_ms = 300;
    Redis r(parsed_url(master_.tcp_url()), o);
    auto start = Clock::now();
    auto got = r.eval_replicated(Script("return redis.call('INCR', KEYS[1])"), {"w"}, {});
    auto took = Clock::now() - start;
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().code, Code::Unavailable);
    EXPECT_TRUE(replication_shortfall(got.error())) << got.error().message;
    EXPECT_NE(got.error().message.find("0 of 1"), std::string::npos) << got.error().message;
    EXPECT_GE(took, std::chrono::milliseconds(250));
    EXPECT_LT(took, std::chrono::seconds(5));
    // The write itself ran on the master (an idempotent retry sees it).
    EXPECT_TRUE(r.connected());
  }
  Redis m(parsed_url(master_.tcp_url()));
  EXPECT_EQ(m.command({"GET", "w"})->str, "2");

  // 0 never waits, and a plain pipeline never does.
  RedisOptions never;
  never.wait_replicas = 0;
  Redis r0(parsed_url(master_.tcp_url()), never);
  EXPECT_TRUE(r0.pipeline_replicated({{"SET", "n", "1"}}).ok());
  EXPECT_TRUE(m.pipeline({{"SET", "n", "2"}}).ok());
}

TEST_F(ReplicatedTest, ReadonlyClosesTheConnectionAndIsTransient) {
  Redis r(parsed_url(replica_.tcp_url()));
  auto got = r.pipeline({{"SET", "x", "1"}, {"PING"}});
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_TRUE(transient_error((*got)[0])) << (*got)[0].str;
  EXPECT_EQ((*got)[0].str.rfind("READONLY", 0), 0u) << (*got)[0].str;
  EXPECT_TRUE((*got)[1].is_status("PONG"));
  EXPECT_FALSE(r.connected());  // the next call looks for the master again

  // Promoted: the same client now writes (READONLY was retried only once,
  // on a fresh connection, and the node answered again).
  Redis admin(parsed_url(replica_.tcp_url()));
  ASSERT_TRUE(admin.command({"REPLICAOF", "NO", "ONE"})->is_status("OK"));
  auto set = r.command({"SET", "x", "1"});
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_TRUE(set->is_status("OK")) << set->str;
}

TEST(RedisAutoReplicasTest, NoReplicaMeansNoWait) {
  RedisServer server(RedisServer::Options{.tcp = true});
  ASSERT_TRUE(server.ok());
  RedisOptions o;
  o.wait_timeout_ms = 5000;  // would be felt if it waited
  Redis r(parsed_url(server.tcp_url()), o);
  auto start = Clock::now();
  auto got = r.pipeline_replicated({{"SET", "a", "1"}});
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(4));
  // Explicitly required, a replica that does not exist cannot confirm.
  o.wait_timeout_ms = 200;
  o.wait_replicas = 1;
  Redis strict(parsed_url(server.tcp_url()), o);
  auto refused = strict.pipeline_replicated({{"SET", "a", "2"}});
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(replication_shortfall(refused.error())) << refused.error().message;
}

}  // namespace
}  // namespace primary
