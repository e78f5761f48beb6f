// MessagePack bodies: any bytes decode to a Value or a BAD_REQUEST, never a
// crash, and whatever decodes re-encodes to bytes that decode to the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/codec.hpp"
#include "common/value.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace primary;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  CodecLimits limits;
  auto value = unpack_value(bytes, limits);
  (void)unpack_map(bytes, limits);
  if (!value) {
    if (value.error().code != Code::BadRequest || value.error().message.empty()) std::abort();
    return 0;
  }
  (void)to_json(*value);
  const std::string once = pack(*value);
  auto again = unpack_value(once, limits);
  if (!again || pack(*again) != once) std::abort();
  return 0;
}
