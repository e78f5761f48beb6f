#include "common/errors.hpp"

#include <array>

namespace primary {
namespace {
constexpr std::array<std::string_view, 11> kNames = {
    "BAD_REQUEST",  "UNKNOWN_OP", "UNAUTHORIZED", "NOT_UNLOCKED", "NO_LICENSES_LEFT",
    "INVALID_UNLOCK_CODE", "NOT_FOUND", "UNAVAILABLE", "BUSY", "INTERNAL",
    "INVALID_SEAT_CODE"};
}

std::string_view code_name(Code c) { return kNames[static_cast<size_t>(c)]; }

std::optional<Code> code_from_name(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i)
    if (kNames[i] == name) return static_cast<Code>(i);
  return std::nullopt;
}

}  // namespace primary
