// A small JSON reader for the setup file (RFC 8259 values; numbers as
// double). Private to the client library.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "primary/client/expected.hpp"

namespace primary::client::json {

struct Node;
using Object = std::map<std::string, Node>;
using Array = std::vector<Node>;

struct Node {
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> v{nullptr};
  bool is_string() const { return v.index() == 3; }
  bool is_array() const { return v.index() == 4; }
  bool is_object() const { return v.index() == 5; }
  const std::string& str() const { return std::get<3>(v); }
  const Array& array() const { return std::get<4>(v); }
  const Object& object() const { return std::get<5>(v); }
};

// Parses one JSON value (surrounded by optional whitespace); the error
// names the offset. Duplicate object keys are an error.
Expected<Node> parse(std::string_view text);

}  // namespace primary::client::json
