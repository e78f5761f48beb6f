// A decoded MessagePack value: the in-memory form of every body that crosses
// the wire. Handlers and tests read and build these; only codec.cpp touches
// msgpack-c.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace primary {

struct Bin {
  std::string bytes;
  bool operator==(const Bin&) const = default;
};

class Value {
 public:
  using Array = std::vector<Value>;
  using Map = std::vector<std::pair<std::string, Value>>;  // wire order kept
  enum class Kind { Nil, Bool, Int, UInt, Float, Str, Bin, Array, Map };

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(long i) : v_(static_cast<int64_t>(i)) {}
  Value(long long i) : v_(static_cast<int64_t>(i)) {}
  Value(unsigned u) : v_(static_cast<int64_t>(u)) {}
  Value(unsigned long u) { set_unsigned(u); }
  Value(unsigned long long u) { set_unsigned(u); }
  Value(double d) : v_(d) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(Bin b) : v_(std::move(b)) {}
  Value(Array a) : v_(std::move(a)) {}
  Value(Map m) : v_(std::move(m)) {}

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_nil() const { return kind() == Kind::Nil; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }
  bool is_str() const { return kind() == Kind::Str; }
  bool is_map() const { return kind() == Kind::Map; }
  bool is_array() const { return kind() == Kind::Array; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  uint64_t as_uint() const { return std::get<uint64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  const std::string& as_str() const { return std::get<std::string>(v_); }
  const Bin& as_bin() const { return std::get<Bin>(v_); }
  const Array& as_array() const { return std::get<Array>(v_); }
  Array& as_array() { return std::get<Array>(v_); }
  const Map& as_map() const { return std::get<Map>(v_); }
  Map& as_map() { return std::get<Map>(v_); }

  // Map lookup; nullptr when this is not a map or the key is absent.
  const Value* find(std::string_view key) const;
  // Map insert-or-replace; turns a nil value into a map first.
  Value& set(std::string_view key, Value v);

  bool operator==(const Value&) const = default;

 private:
  void set_unsigned(unsigned long long u) {
    if (u <= static_cast<unsigned long long>(INT64_MAX))
      v_ = static_cast<int64_t>(u);
    else
      v_ = static_cast<uint64_t>(u);
  }
  std::variant<std::monostate, bool, int64_t, uint64_t, double, std::string, Bin, Array, Map> v_;
};

// Compact JSON rendering for humans and tools (bin as base64url, NaN as null).
std::string to_json(const Value& v);

// Readers of a reply map (any map works; a non-map reads as empty):
// the string at `key`, "" when absent or not a string;
std::string reply_str(const Value& map, std::string_view key);
// the integer at `key`, `missing` when absent or not an integer;
int64_t reply_int(const Value& map, std::string_view key, int64_t missing = -1);
// whether `reply` is a map whose "ok" is boolean true.
bool reply_ok(const Value& reply);

}  // namespace primary
