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
  auto taken = a.take();
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_TRUE(*taken);
  EXPECT_EQ(holder(r, "lock"), "a");
  EXPECT_GT(pttl(r, "lock"), 50000);
  taken = b.take();
  ASSERT_TRUE(taken);
  EXPECT_FALSE(*taken);
  // NX: the same token does not take it twice either.
  taken = a_again.take();
  ASSERT_TRUE(taken);
  EXPECT_FALSE(*taken);
  EXPECT_EQ(holder(r, "lock"), "a");
}

TEST_F(RedisLockTest, RenewOnlyWhileHeld) {
  Redis r = client();
  ExpiringLock a(r, "lock", "a", 60000), b(r, "lock", "b", 60000);
  auto renewed = a.renew();
  ASSERT_TRUE(renewed);
  EXPECT_FALSE(*renewed) << "nothing to renew";
  ASSERT_TRUE(*a.take());
  ASSERT_TRUE(r.command({"PEXPIRE", "lock", "1000"}));
  renewed = a.renew();
  ASSERT_TRUE(renewed);
  EXPECT_TRUE(*renewed);
  EXPECT_GT(pttl(r, "lock"), 50000);
  renewed = b.renew();
  ASSERT_TRUE(renewed);
  EXPECT_FALSE(*renewed);
  EXPECT_EQ(holder(r, "lock"), "a");
}

TEST_F(RedisLockTest, ReleaseOnlyOwn) {
  Redis r = client();
  ExpiringLock a(r, "lock", "a", 60000), b(r, "lock", "b", 60000);
  ASSERT_TRUE(*a.take());
  auto released = b.release();
  ASSERT_TRUE(released);
  EXPECT_FALSE(*released);
  EXPECT_EQ(holder(r, "lock"), "a");
  released = a.release();
  ASSERT_TRUE(released);
  EXPECT_TRUE(*released);
  EXPECT_EQ(holder(r, "lock"), "");
  released = a.release();
  ASSERT_TRUE(released);
  EXPECT_FALSE(*released);
  EXPECT_TRUE(*b.take()) << "free again";
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
  ASSERT_TRUE(*a.take());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!holder(r, "lock").empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(holder(r, "lock"), "") << "the lock never expired";
  auto renewed = a.renew();
  ASSERT_TRUE(renewed);
  EXPECT_FALSE(*renewed) << "an expired lock is not renewed";
  ASSERT_TRUE(*b.take());
  // The old holder can neither extend nor drop the new one's lock.
  EXPECT_FALSE(*a.renew());
  EXPECT_FALSE(*a.release());
  EXPECT_EQ(*a.hold(), ExpiringLock::Hold::Refused);
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
