#include "common/names.hpp"
#include "common/value.hpp"

#include <cmath>
#include <cstdio>

#include "common/crypto.hpp"

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

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void json(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Nil: out += "null"; break;
    case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; break;
    case Value::Kind::Int: out += std::to_string(v.as_int()); break;
    case Value::Kind::UInt: out += std::to_string(v.as_uint()); break;
    case Value::Kind::Float: {
      if (!std::isfinite(v.as_float())) { out += "null"; break; }
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", v.as_float());
      out += buf;
      break;
    }
    case Value::Kind::Str: json_string(out, v.as_str()); break;
    case Value::Kind::Bin: json_string(out, base64url_encode(v.as_bin().bytes)); break;
    case Value::Kind::Array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.as_array()) {
        if (!first) out += ',';
        first = false;
        json(out, e);
      }
      out += ']';
      break;
    }
    case Value::Kind::Map: {
      out += '{';
      bool first = true;
      for (const auto& [k, e] : v.as_map()) {
        if (!first) out += ',';
        first = false;
        json_string(out, k);
        out += ':';
        json(out, e);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string to_json(const Value& v) {
  std::string out;
  json(out, v);
  return out;
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
