// Lease key sets (issue 23, part 3): the key file's lines, which key signs
// and which are published at each moment, a rotation's timeline, and
// verification by key id against a set, in common/ and in the client
// library alike.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "primary/client/lease.hpp"
#include "tests/support/temp_dir.hpp"

namespace primary::test {
namespace {

Lease lease_for(const std::string& computer, int64_t issued, const std::string& kid) {
  return Lease{computer, "LIC-" + computer, "SN-1", issued, issued + 100, kid};
}

LeaseKey key(int64_t sign_from = 0, int64_t retire_at = 0) {
  return LeaseKey{sign_keypair().secret_key, sign_from, retire_at};
}

TEST(LeaseKeys, AOneLineFileIsOneKeyThatAlwaysSigns) {
  TempDir dir("lk");
  const std::string file = dir.file("lease.key");
  ASSERT_TRUE(ensure_signing_key(file));  // the file every server had before rotation
  auto set = read_lease_keys(file);
  ASSERT_TRUE(set) << set.error().message;
  ASSERT_EQ(set->keys.size(), 1u);
  EXPECT_EQ(set->keys[0].sign_from, 0);
  EXPECT_EQ(set->keys[0].retire_at, 0);
  ASSERT_NE(set->signer(0), nullptr);
  EXPECT_EQ(set->signer(4'000'000'000), &set->keys[0]);
  EXPECT_EQ(set->published(123), std::vector<std::string>{set->keys[0].public_key()});
  // What the single-key reader takes from it is the same key.
  auto one = read_key_file(file, 64, true);
  ASSERT_TRUE(one);
  EXPECT_EQ(*one, set->keys[0].secret);
}

TEST(LeaseKeys, TheFileRoundTripsAndBadFilesAreRefusedWithTheReason) {
  TempDir dir("lk");
  LeaseKeySet set{{key(0, 2000), key(1000)}};
  const std::string file = dir.file("lease.key");
  ASSERT_TRUE(write_file_atomic(file, lease_keys_text(set), 0600));
  auto back = read_lease_keys(file);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->keys.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back->keys[i].secret, set.keys[i].secret);
    EXPECT_EQ(back->keys[i].sign_from, set.keys[i].sign_from);
    EXPECT_EQ(back->keys[i].retire_at, set.keys[i].retire_at);
  }
  const std::string good = base64url_encode(set.keys[0].secret);
  struct Case {
    std::string text, why;
  } cases[] = {
      {"", "holds no key"},
      {"\n\n", "holds no key"},
      {"abc\n", "line 1 does not hold a 64-byte base64url key"},
      {good + "\n" + good + " sign_from=x\n", "line 2: 'sign_from=x'"},
      {good + " retire_at=-5\n", "'retire_at=-5'"},
      {good + " colour=blue\n", "'colour=blue'"},
      {good + " sign_from\n", "'sign_from'"},
  };
  for (const auto& c : cases) {
    ASSERT_TRUE(write_file_atomic(file, c.text, 0600));
    auto r = read_lease_keys(file);
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().message.find(c.why), std::string::npos) << r.error().message;
  }
  ASSERT_TRUE(write_file_atomic(file, good + "\n", 0640));
  auto open = read_lease_keys(file);
  ASSERT_FALSE(open);
  EXPECT_NE(open.error().message.find("readable by group or others"), std::string::npos);
  EXPECT_FALSE(read_lease_keys(dir.file("missing")));
}

TEST(LeaseKeys, ARotationPublishesFirstSignsAfterTheOverlapAndRetiresTheOldKeyOneOverlapLater) {
  const LeaseKeySet before{{key()}};
  const int64_t t = 1'000'000, overlap = 600;
  auto rotated = rotate_lease_keys(before, t, overlap);
  ASSERT_TRUE(rotated) << rotated.error().message;
  ASSERT_EQ(rotated->keys.size(), 2u);
  const std::string old_pub = before.keys[0].public_key();
  const std::string new_pub = rotated->keys[1].public_key();
  // During the overlap: the old key signs, both are published, old first.
  EXPECT_EQ(rotated->signer(t)->public_key(), old_pub);
  EXPECT_EQ(rotated->signer(t + overlap - 1)->public_key(), old_pub);
  EXPECT_EQ(rotated->published(t), (std::vector<std::string>{old_pub, new_pub}));
  // After it: the new key signs; the old one still verifies what it signed.
  EXPECT_EQ(rotated->signer(t + overlap)->public_key(), new_pub);
  EXPECT_EQ(rotated->published(t + overlap), (std::vector<std::string>{new_pub, old_pub}));
  // One overlap later the old key leaves the set.
  EXPECT_EQ(rotated->published(t + 2 * overlap - 1).size(), 2u);
  EXPECT_EQ(rotated->published(t + 2 * overlap), std::vector<std::string>{new_pub});

  // A second rotation while the first still publishes is refused...
  auto again = rotate_lease_keys(*rotated, t + overlap - 1, overlap);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("still publishing"), std::string::npos);
  // ...after the switch it goes ahead: the retired keys leave, the signing
  // key retires early enough, the third key comes in.
  auto third = rotate_lease_keys(*rotated, t + 2 * overlap, overlap);
  ASSERT_TRUE(third) << third.error().message;
  ASSERT_EQ(third->keys.size(), 2u);
  EXPECT_EQ(third->keys[0].public_key(), new_pub);
  EXPECT_EQ(third->keys[0].retire_at, t + 4 * overlap);
  EXPECT_FALSE(rotate_lease_keys(before, t, 0));
}

TEST(LeaseKeys, AVerifierTakesTheKeyTheLeaseNamesAndAnyKeyForLeasesNamingNone) {
  const LeaseKey a = key(), b = key();
  const std::string kid_a = lease_key_id(a.public_key()), kid_b = lease_key_id(b.public_key());
  ASSERT_EQ(kid_a.size(), 8u);
  ASSERT_NE(kid_a, kid_b);
  const std::vector<std::string> both = {a.public_key(), b.public_key()};
  const int64_t now = 1000;

  auto by_b = make_leases({lease_for("PC-1", now, kid_b), lease_for("PC-2", now, kid_b)}, b.secret);
  for (const auto& token : by_b) {
    auto ok = verify_lease(token, both, now);
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->kid, kid_b);
    EXPECT_FALSE(verify_lease(token, std::vector<std::string>{a.public_key()}, now));
  }
  // A lease of a key the set does not hold says so.
  auto missing = verify_lease(by_b[0], std::vector<std::string>{a.public_key()}, now);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("not in the key set"), std::string::npos) << missing.error().message;
  // A lease that names a key falsely (signed by b, naming a) fails.
  auto lying = make_lease(lease_for("PC-3", now, kid_a), b.secret);
  EXPECT_FALSE(verify_lease(lying, both, now));
  // Leases from before rotation name no key: any key of the set may verify.
  auto plain = make_lease(lease_for("PC-4", now, ""), a.secret);
  auto ok = verify_lease(plain, both, now);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->kid, "");
  // Expiry is still expiry, by whichever key.
  auto expired = verify_lease(by_b[0], both, now + 100 + kLeaseToleranceS);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().message, "lease expired");
  EXPECT_FALSE(verify_lease(by_b[0], std::vector<std::string>{}, now));
}

TEST(LeaseKeys, TheClientLibraryTakesAKeySetAsCommaSeparatedText) {
  const LeaseKey a = key(), b = key();
  const std::string set = base64url_encode(a.public_key()) + "," + base64url_encode(b.public_key());
  auto token = make_lease(lease_for("PC-1", 1000, lease_key_id(b.public_key())), b.secret);
  auto ok = client::verify_lease(token, set, 1000);
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_EQ(ok->computer, "PC-1");
  EXPECT_FALSE(client::verify_lease(token, base64url_encode(a.public_key()), 1000));
  EXPECT_TRUE(client::verify_lease(token, b.public_key(), 1000));  // raw bytes, as before
  EXPECT_FALSE(client::verify_lease(token, set + ",nonsense", 1000));
  EXPECT_FALSE(client::verify_lease(token, ",", 1000));
}

}  // namespace
}  // namespace primary::test
