// Every privileged op of the catalog has an entry in the table of the events
// it causes (tests/attribution_table.hpp), so that a new op is given one and
// attribution_test checks who its events name.
#include <gtest/gtest.h>

#include <set>

#include "common/schema.hpp"
#include "tests/attribution_table.hpp"

namespace primary::test {
namespace {

TEST(AttributionTable, EveryPrivilegedOpOfTheCatalogHasAnEntry) {
  const auto& table = attributed_events();
  std::set<std::string> privileged;
  for (const OpSpec& spec : catalog()) {
    if (!service_privileged(spec.service)) continue;
    const std::string key = std::string(spec.service) + "/" + std::string(spec.op);
    privileged.insert(key);
    EXPECT_TRUE(table.count(key)) << key << ": a privileged op without an entry in tests/attribution_table.hpp "
                                  << "(the events it causes, or none)";
  }
  EXPECT_FALSE(privileged.empty());
  for (const auto& [key, events] : table) {
    EXPECT_TRUE(privileged.count(key)) << key << ": in the table but not a privileged op of the catalog";
    for (const auto& type : events) EXPECT_NE(type.find('.'), std::string::npos) << key << ": " << type;
  }
  // An op that changes something must take on_behalf (the console acting
  // for a browser); an op that only reads need not.
  for (const OpSpec& spec : catalog()) {
    const std::string key = std::string(spec.service) + "/" + std::string(spec.op);
    auto it = table.find(key);
    if (it == table.end() || it->second.empty()) continue;
    bool takes = false;
    for (const Field& f : spec.request) takes = takes || f.name == field::kOnBehalf;
    EXPECT_TRUE(takes) << key << " changes something but does not declare " << field::kOnBehalf;
  }
}

}  // namespace
}  // namespace primary::test
