// The Client's setup file (JSON written by primaryctl setup-info): any text
// is a SetupInfo or an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "primary/client/setup.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)primary::client::parse_setup(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
