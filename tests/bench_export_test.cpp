// `primary-bench export` on a small fleet, so the benchmark that measures
// the 1,000,000-computer export (docs/benchmarks.md) keeps working: both
// exports carry every computer plus the header, and the memory figures are
// read from a live console.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "tests/support/process.hpp"
#include "tests/support/stack.hpp"

namespace primary::test {
namespace {

double figure(const std::string& out, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("\\b" + key + "=([0-9.]+)"))) return -1;
  return std::stod(m[1].str());
}

TEST(BenchExport, TwoThousandComputersExportWithTheHeaderFromBothTools) {
  int rc = -1;
  const std::string out = run_capture({bin("primary-bench"), "export", "--computers", "2000"}, &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(figure(out, "console_rows"), 2001) << out;
  EXPECT_EQ(figure(out, "ctl_rows"), 2001) << out;
  EXPECT_EQ(figure(out, "console_bytes"), figure(out, "ctl_bytes")) << "the same formatter: " << out;
  EXPECT_GT(figure(out, "console_rss_peak_mib"), 1) << out;
  EXPECT_GT(figure(out, "console_hwm_after_mib"), 1) << out;
  EXPECT_GT(figure(out, "ctl_peak_rss_mib"), 1) << out;
}

}  // namespace
}  // namespace primary::test
