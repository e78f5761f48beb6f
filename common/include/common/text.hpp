// Human-readable renderings shared by primaryctl and the console.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace primary {

// "3d 4h 5m 6s", leading zero units left out; "0s" for zero or less.
std::string duration_text(int64_t seconds);

// `text` percent-encoded for one URL path segment or query value: RFC 3986
// unreserved characters (A-Z a-z 0-9 - _ . ~) as they are, every other byte
// as %XX.
std::string url_component(std::string_view text);

}  // namespace primary
