// The --redis setting: parse_redis_url on any text, and the redacted form of
// whatever parses.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/redis.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace primary;
  auto url = parse_redis_url(std::string_view(reinterpret_cast<const char*>(data), size));
  if (url) (void)redacted(*url);
  return 0;
}
