#include "common/value.hpp"

#include <nlohmann/json.hpp>

#include "common/crypto.hpp"
#include "common/names.hpp"

namespace primary {

const Value* Value::find(std::string_view key) const {
  if (!is_map()) return nullptr;
  for (const auto& [k, v] : as_map())
    if (k == key) return &v;
  return nullptr;
}

Value& Value::set(std::string_view key, Value v) {
  if (is_nil()) v_ = Map{};
  for (auto& [k, existing] : as_map())
    if (k == key) return existing = std::move(v);
  as_map().emplace_back(std::string(key), std::move(v));
  return as_map().back().second;
}

namespace {

nlohmann::ordered_json document(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Nil: return nullptr;
    case Value::Kind::Bool: return v.as_bool();
    case Value::Kind::Int: return v.as_int();
    case Value::Kind::UInt: return v.as_uint();
    case Value::Kind::Float: return v.as_float();  // NaN and infinities dump as null
    case Value::Kind::Str: return v.as_str();
    case Value::Kind::Bin: return base64url_encode(v.as_bin().bytes);
    case Value::Kind::Array: {
      auto out = nlohmann::ordered_json::array();
      for (const auto& e : v.as_array()) out.push_back(document(e));
      return out;
    }
    case Value::Kind::Map: {
      auto out = nlohmann::ordered_json::object();
      for (const auto& [k, e] : v.as_map()) out[k] = document(e);
      return out;
    }
  }
  return nullptr;
}

}  // namespace

std::string to_json(const Value& v) {
  // Bytes that are not UTF-8 (a MessagePack str may hold any) become U+FFFD.
  return document(v).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string reply_str(const Value& map, std::string_view key) {
  const Value* f = map.find(key);
  return f && f->is_str() ? f->as_str() : std::string();
}

int64_t reply_int(const Value& map, std::string_view key, int64_t missing) {
  const Value* f = map.find(key);
  return f && f->is_int() ? f->as_int() : missing;
}

bool reply_ok(const Value& reply) {
  const Value* f = reply.find(field::kOk);
  return f && f->is_bool() && f->as_bool();
}

}  // namespace primary
