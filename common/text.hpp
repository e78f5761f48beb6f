// Human-readable renderings shared by primaryctl and the console.
#pragma once

#include <cstdint>
#include <string>

namespace primary {

// "3d 4h 5m 6s", leading zero units left out; "0s" for zero or less.
std::string duration_text(int64_t seconds);

}  // namespace primary
