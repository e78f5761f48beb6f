#include "tests/support/util.hpp"

#include <fstream>
#include <sstream>
#include <thread>

#include "common/process.hpp"

namespace primary::test {

bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(step);
  }
  return predicate();
}

std::string read_file(const std::string& path) { return primary::read_file(path).value_or(""); }

}  // namespace primary::test
