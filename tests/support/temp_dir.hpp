// A private directory for one test, removed with everything in it at the end.
#pragma once

#include <string>
#include <string_view>

namespace primary::test {

// Creates /tmp/<prefix>-XXXXXX (kept short: socket paths must stay under
// ~100 characters). Removed recursively on destruction unless the environment
// variable PRIMARY_KEEP_TEST_DIRS is set. Aborts the test program if /tmp is
// not writable.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "pt");
  ~TempDir();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Absolute path, without a trailing slash.
  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string file(std::string_view name) const;

 private:
  void remove();
  std::string path_;
};

}  // namespace primary::test
