// MessagePack <-> Value, with the hard limits that keep one peer's bad input
// from costing the server more than a bounded amount of work.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/errors.hpp"
#include "common/value.hpp"

namespace primary {

struct CodecLimits {
  size_t max_body = 4 * 1024 * 1024;  // bytes of one body frame
  size_t max_depth = 16;              // nesting of arrays/maps
  size_t max_items = 100000;          // elements in one array or map
};

// Decodes exactly one MessagePack object that must be a map with unique
// string keys; no ext types, no trailing bytes. Errors are BAD_REQUEST.
Result<Value> unpack_map(std::string_view bytes, const CodecLimits& limits = {});

// Decodes any single MessagePack object under the same limits.
Result<Value> unpack_value(std::string_view bytes, const CodecLimits& limits = {});

std::string pack(const Value& v);

}  // namespace primary
