// JSON documents for the client library (the setup file), through
// nlohmann::json. Private to the library: its public headers stay
// standard-library only.
#pragma once

#include <nlohmann/json.hpp>

#include <string_view>

#include "primary/client/expected.hpp"

namespace primary::client::json {

// Parses one JSON document (RFC 8259). Refuses, with the byte offset in the
// message, anything that is not exactly one value (trailing text included)
// and objects with a duplicate key, which a reader could take either way.
Expected<nlohmann::json> parse(std::string_view text);

}  // namespace primary::client::json
