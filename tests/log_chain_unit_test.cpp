// logchain::verify on chains built in memory: every kind of break reported
// at its entry, and the canonical hash as docs/protocol.md defines it.
#include <gtest/gtest.h>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/log_chain.hpp"
#include "common/names.hpp"

using namespace primary;
using logchain::Entry;

namespace {

struct Chain {
  SignKeypair key = sign_keypair();
  std::vector<Entry> entries;

  // n entries; a checkpoint (naming the entry before it) at every index in `at`.
  explicit Chain(int n, std::vector<int> at = {}) {
    std::string prev(logchain::kGenesis);
    for (int i = 0; i < n; ++i) {
      Entry e;
      e.id = std::to_string(1000 + i) + "-0";
      e.ts = 1000 + i;
      e.seq = i + 1;
      e.prev = prev;
      e.where = "L" + std::to_string(i + 1);
      if (std::find(at.begin(), at.end(), i) != at.end()) {
        e.type = event::kLogCheckpoint;
        const std::string sig = sign_detached(logchain::checkpoint_message(i, prev, e.ts), key.secret_key);
        e.data = pack(Value(Value::Map{{field::kCount, Value(i)},
                                       {field::kHead, Value(prev)},
                                       {field::kLogKey, Value(base64url_encode(key.public_key))},
                                       {field::kSignature, Value(base64url_encode(sig))}}));
      } else {
        e.type = event::kLicenseReserved;
        e.data = pack(Value(Value::Map{{field::kComputer, Value("PC-" + std::to_string(i))}}));
      }
      prev = logchain::hash(e);
      entries.push_back(std::move(e));
    }
  }
  logchain::Report verify() const { return logchain::verify(entries, {key.public_key}); }
};

// "KIND" at "(WHERE, seq": what the report must say.
void expect(const logchain::Report& r, const std::string& kind, const std::string& where) {
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("(" + where + ", seq"), std::string::npos) << r.problem;
  EXPECT_NE(r.problem.find("): " + kind), std::string::npos) << r.problem;
}

}  // namespace

TEST(LogChainVerify, HashIsSha1OfTheCanonicalBytes) {
  Entry e{"1733616000123-0", "license.reserved", 1733616000123, 7, std::string(logchain::kGenesis), "\x81\xa1" "a\x01", "", false};
  EXPECT_EQ(logchain::hash(e), sha1_hex("1733616000123-0\nlicense.reserved\n1733616000123\n7\n" +
                                        std::string(logchain::kGenesis) + "\n\x81\xa1" "a\x01"));
}

TEST(LogChainVerify, CleanChainCountsEntriesAndCheckpoints) {
  Chain c(50, {10, 30, 49});
  auto r = c.verify();
  ASSERT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.verified, 50);
  EXPECT_EQ(r.checkpoints, 3);
  EXPECT_EQ(r.last_seq, 50);
  // Without a key the signatures are counted as unchecked, not as good.
  auto unkeyed = logchain::verify(c.entries, {});
  EXPECT_TRUE(unkeyed.ok);
  EXPECT_EQ(unkeyed.checkpoints, 0);
  EXPECT_EQ(unkeyed.checkpoints_unchecked, 3);
}

TEST(LogChainVerify, EachBreakIsReportedAtItsEntry) {
  {
    Chain c(20);
    c.entries[7].data += "x";
    expect(c.verify(), "changed", "L8");
  }
  {
    Chain c(20);
    c.entries[7].prev[0] = c.entries[7].prev[0] == 'a' ? 'b' : 'a';
    expect(c.verify(), "changed", "L8");
  }
  {
    Chain c(20);
    c.entries[7].seq = 70;
    expect(c.verify(), "changed", "L8");
  }
  {
    Chain c(20);
    c.entries[7].text_differs = true;
    expect(c.verify(), "changed", "L8");
  }
  {
    Chain c(20);
    c.entries.erase(c.entries.begin() + 7);
    expect(c.verify(), "removed", "L9");
  }
  {
    Chain c(20);
    c.entries.erase(c.entries.begin() + 7, c.entries.begin() + 10);
    expect(c.verify(), "removed", "L11");
  }
  {
    Chain c(20);
    std::swap(c.entries[7], c.entries[8]);
    expect(c.verify(), "reordered", "L9");
  }
  {
    Chain c(20);
    c.entries.insert(c.entries.begin() + 7, c.entries[2]);
    expect(c.verify(), "inserted", "L3");  // the copy of L3, found where L8 should be
  }
  {
    Chain c(20);
    Entry forged = c.entries[6];  // a made-up entry linked after L7
    forged.data = "made up";
    forged.seq = 8;
    forged.prev = logchain::hash(c.entries[6]);
    forged.where = "FORGED";
    c.entries.insert(c.entries.begin() + 7, forged);
    expect(c.verify(), "inserted", "FORGED");
  }
}

TEST(LogChainVerify, CheckpointsMustBeSignedByATrustedKeyAndNameTheirHead) {
  {
    Chain c(20, {10});
    auto r = logchain::verify(c.entries, {sign_keypair().public_key});
    expect(r, "forged checkpoint", "L11");
  }
  {
    Chain c(20, {10});
    auto fields = *unpack_value(c.entries[10].data);
    fields.set(field::kCount, Value(5));  // the signature no longer covers it
    c.entries[10].data = pack(fields);
    for (size_t i = 11; i < c.entries.size(); ++i) c.entries[i].prev = logchain::hash(c.entries[i - 1]);
    expect(c.verify(), "forged checkpoint", "L11");
  }
  {
    // Signed by the right key over a head that is not the entry it counts.
    Chain c(20, {10});
    const std::string wrong(40, 'f');
    const std::string sig = sign_detached(logchain::checkpoint_message(10, wrong, c.entries[10].ts), c.key.secret_key);
    auto fields = *unpack_value(c.entries[10].data);
    fields.set(field::kHead, Value(wrong));
    fields.set(field::kSignature, Value(base64url_encode(sig)));
    c.entries[10].data = pack(fields);
    for (size_t i = 11; i < c.entries.size(); ++i) c.entries[i].prev = logchain::hash(c.entries[i - 1]);
    auto r = c.verify();
    expect(r, "forged checkpoint", "L11");
    EXPECT_NE(r.problem.find("names head"), std::string::npos) << r.problem;
  }
}
