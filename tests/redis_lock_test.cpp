// The expiring lock (common/redis_lock.hpp) against a real, private
// redis-server: take, refuse while another holds it, renew, release only
// one's own, expiry, and Redis down or answering with an error.
#include "common/redis_lock.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/redis_failure.hpp"
#include "tests/support/redis_server.hpp"

namespace primary {
namespace {

using test::RedisServer;

// A lock call's answer; a call that Redis did not answer fails the test.
bool answer(const Result<bool>& r) {
  if (!r) {
    ADD_FAILURE() << r.error().message;
    return false;
  }
  return *r;
}

class RedisLockTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.ok()); }
  Redis client() {
    auto url = parse_redis_url(server_.url());
    EXPECT_TRUE(url.ok());
    return Redis(url.ok() ? *url : RedisUrl{});
  }
  std::string holder(Redis& r, const std::string& key) {
    auto got = r.command({"GET", key});
    return got && got->is_str() ? got->str : std::string();
  }
  int64_t pttl(Redis& r, const std::string& key) {
    auto got = r.command({"PTTL", key});
    return got && got->is_int() ? got->integer : -100;
  }
  RedisServer server_;
};

TEST_F(RedisLockTest, TakeRefusesWhileAnyoneHoldsIt) {
  Redis r = client();
  ExpiringLock a(r, "lock", "a", 60000), b(r, "lock", "b", 60000), a_again(r, "lock", "a", 60000);
  EXPECT_TRUE(answer(a.take()));
  EXPECT_EQ(holder(r, "lock"), "a");
  EXPECT_GT(pttl(r, "lock"), 50000);
  EXPECT_FALSE(answer(b.take()));
  EXPECT_FALSE(answer(a_again.take())) << "NX: the same token does not take it twice either";
  EXPECT_EQ(holder(r, "lock"), "a");
}

TEST_F(RedisLockTest, RenewOnlyWhileHeld) {
  Redis r = client();
  ExpiringLock a(r, "lock", "a", 60000), b(r, "lock", "b", 60000);
  EXPECT_FALSE(answer(a.renew())) << "nothing to renew";
  ASSERT_TRUE(answer(a.take()));
  ASSERT_TRUE(r.command({"PEXPIRE", "lock", "1000"}));
  EXPECT_TRUE(answer(a.renew()));
  EXPECT_GT(pttl(r, "lock"), 50000);
  EXPECT_FALSE(answer(b.renew()));
  EXPECT_EQ(holder(r, "lock"), "a");
}

TEST_F(RedisLockTest, ReleaseOnlyOwn) {
  Redis r = client();
  ExpiringLock a(r, "lock", "a", 60000), b(r, "lock", "b", 60000);
  ASSERT_TRUE(answer(a.take()));
  EXPECT_FALSE(answer(b.release()));
  EXPECT_EQ(holder(r, "lock"), "a");
  EXPECT_TRUE(answer(a.release()));
  EXPECT_EQ(holder(r, "lock"), "");
  EXPECT_FALSE(answer(a.release()));
  EXPECT_TRUE(answer(b.take())) << "free again";
}

TEST_F(RedisLockTest, HoldTakesRenewsOrRefuses) {
  Redis r = client();
  ExpiringLock a(r, "lock", "a", 60000), b(r, "lock", "b", 60000);
  auto held = a.hold();
  ASSERT_TRUE(held) << held.error().message;
  EXPECT_EQ(*held, ExpiringLock::Hold::Taken);
  ASSERT_TRUE(r.command({"PEXPIRE", "lock", "1000"}));
  held = a.hold();
  ASSERT_TRUE(held);
  EXPECT_EQ(*held, ExpiringLock::Hold::Renewed);
  EXPECT_GT(pttl(r, "lock"), 50000);
  held = b.hold();
  ASSERT_TRUE(held);
  EXPECT_EQ(*held, ExpiringLock::Hold::Refused);
  EXPECT_EQ(holder(r, "lock"), "a");
}

TEST_F(RedisLockTest, ExpiresAndAnotherTakesOver) {
  Redis r = client();
  ExpiringLock a(r, "lock", "a", 50), b(r, "lock", "b", 60000);
  ASSERT_TRUE(answer(a.take()));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!holder(r, "lock").empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(holder(r, "lock"), "") << "the lock never expired";
  EXPECT_FALSE(answer(a.renew())) << "an expired lock is not renewed";
  ASSERT_TRUE(answer(b.take()));
  // The old holder can neither extend nor drop the new one's lock.
  EXPECT_FALSE(answer(a.renew()));
  EXPECT_FALSE(answer(a.release()));
  auto held = a.hold();
  ASSERT_TRUE(held);
  EXPECT_EQ(*held, ExpiringLock::Hold::Refused);
  EXPECT_EQ(holder(r, "lock"), "b");
}

TEST_F(RedisLockTest, ErrorReplyAndNoRedisAreErrors) {
  Redis r = client();
  ASSERT_TRUE(r.command({"HSET", "lock", "f", "v"}));
  ExpiringLock a(r, "lock", "a", 60000);
  auto held = a.hold();  // GET on a hash: WRONGTYPE
  ASSERT_FALSE(held);
  EXPECT_EQ(held.error().code, Code::Internal);
  EXPECT_EQ(redis_failure(held.error(), "store").code, Code::Internal);
  server_.stop();
  auto taken = a.take();
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, Code::Unavailable);
  const Reply reply = redis_failure(taken.error(), "license store");
  EXPECT_EQ(reply.code, Code::Unavailable);
  EXPECT_EQ(reply.message, "the license store is unavailable; retry");
  EXPECT_FALSE(a.renew());
  EXPECT_FALSE(a.release());
}

TEST(RedisFailureTest, CodesAndWording) {
  RedisReply loading;
  loading.type = RedisReply::Type::Error;
  loading.str = "LOADING Redis is loading the dataset in memory";
  Reply reply = redis_failure(loading, "update store");
  EXPECT_EQ(reply.code, Code::Unavailable);
  EXPECT_EQ(reply.message, "the update store is not ready; retry");
  RedisReply script = loading;
  script.str = "ERR user_script:1: oops";
  reply = redis_failure(script, "update store");
  EXPECT_EQ(reply.code, Code::Internal);
  EXPECT_EQ(reply.message, "internal error; see server log");
  RedisReply nil;  // a reply of the wrong shape
  EXPECT_EQ(redis_failure(nil, "store").code, Code::Internal);
}

}  // namespace
}  // namespace primary
