// The catalog (common/names.hpp, common/schema.cpp): every operation is
// declared once, replies are checked against their declared spec, and
// product code spells wire names through the catalog's constants.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "common/names.hpp"
#include "common/schema.hpp"

namespace fs = std::filesystem;
using namespace primary;

namespace {

Value map_of(Value::Map m) { return Value(std::move(m)); }

}  // namespace

TEST(Catalog, EveryOpHasOneEntryFoundByItsWireNames) {
  const auto& all = catalog();
  ASSERT_EQ(all.size(), static_cast<size_t>(Op::Sleep) + 1);
  for (size_t i = 0; i < all.size(); ++i) {
    const Op op = static_cast<Op>(i);
    const OpSpec& spec = spec_of(op);
    EXPECT_EQ(spec.id, op);
    EXPECT_EQ(find_op(spec.service, spec.op), &spec) << spec.service << " " << spec.op;
    EXPECT_TRUE(service_declared(spec.service));
  }
  EXPECT_EQ(find_op(svc::kLicense, opname::kReserve), nullptr);
  EXPECT_TRUE(service_privileged(svc::kLicenseControl));
  EXPECT_TRUE(service_privileged(svc::kAdmin));
  EXPECT_FALSE(service_privileged(svc::kLicense));
}

TEST(Catalog, DecodedRequestCarriesItsOp) {
  Value rid;
  auto req = decode_request(svc::kLicenseControl,
                            encode_request(opname::kReserve, {{field::kComputer, Value("pc-1")}}), {}, &rid);
  ASSERT_TRUE(req) << req.error().message;
  EXPECT_EQ(req->id(), Op::Reserve);
  EXPECT_EQ(req->str(field::kComputer), "PC-1");
}

TEST(Catalog, ReplyCheckFindsMissingAndMistypedFields) {
  Value good = map_of({{field::kOk, Value(true)},
                       {field::kLicense, Value("L-1")},
                       {field::kComputer, Value("PC-1")},
                       {field::kCreated, Value(true)},
                       {field::kReserved, Value(int64_t{1})},
                       {field::kPurchased, Value(int64_t{5})},
                       {"later_addition", Value("extra fields are allowed")}});
  EXPECT_TRUE(validate_reply(Op::Reserve, good));

  Value missing = good;
  Value::Map without;
  for (auto& kv : missing.as_map())
    if (kv.first != field::kPurchased) without.push_back(kv);
  auto e = validate_reply(Op::Reserve, Value(without));
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find(field::kPurchased), std::string::npos) << e.error().message;

  Value mistyped = good;
  mistyped.set(field::kCreated, Value("yes"));
  e = validate_reply(Op::Reserve, mistyped);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find(field::kCreated), std::string::npos) << e.error().message;

  Value bad_status = map_of({{field::kStatus, Value("maybe")},
                             {field::kNextCheckS, Value(int64_t{60})},
                             {field::kUpload, Value(false)}});
  EXPECT_FALSE(validate_reply(Op::Heartbeat, bad_status));
  EXPECT_FALSE(validate_reply(Op::Status, Value("not a map")));
}

// Product C++ (not tests, not tools/, not the catalog itself) spells these
// wire names through common/names.hpp; a few uses remain where a header must
// stay standard-library only (the client library's public headers).
TEST(Catalog, ProductCodeSpellsWireNamesThroughTheCatalog) {
  const fs::path root = PRIMARY_SOURCE_DIR;
  const std::vector<std::string> dirs = {"common", "broker", "licensed", "updater", "admin",
                                         "server", "web",    "ctl",      "client"};
  const std::vector<std::string> names = {"computer", "license", "license.control", "next_check_s"};
  std::map<std::string, int> count;
  std::map<std::string, std::string> where;
  for (const auto& d : dirs) {
    for (const auto& entry : fs::recursive_directory_iterator(root / d)) {
      const auto ext = entry.path().extension();
      if (ext != ".cpp" && ext != ".hpp") continue;
      const auto rel = fs::relative(entry.path(), root).string();
      if (rel == "common/include/common/names.hpp" || rel == "common/schema.cpp") continue;
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      const std::string s = text.str();
      for (const auto& n : names) {
        const std::string lit = "\"" + n + "\"";
        for (size_t at = s.find(lit); at != std::string::npos; at = s.find(lit, at + 1)) {
          ++count[n];
          where[n] += " " + rel;
        }
      }
    }
  }
  for (const auto& n : names) EXPECT_LE(count[n], 3) << "\"" << n << "\" in" << where[n];
}
