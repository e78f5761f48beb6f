#include "common/codec.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace primary {
namespace {

Error bad(std::string msg) { return Error{Code::BadRequest, std::move(msg)}; }

// Converts a msgpack-c object tree; returns false with `why` on a value the
// protocol does not allow (ext types, non-string or duplicate map keys).
bool convert(const msgpack::object& o, Value& out, size_t depth, const CodecLimits& lim,
             std::string& why) {
  if (depth > lim.max_depth) {
    why = "nesting too deep";
    return false;
  }
  switch (o.type) {
    case msgpack::type::NIL: out = Value(); return true;
    case msgpack::type::BOOLEAN: out = Value(o.via.boolean); return true;
    case msgpack::type::POSITIVE_INTEGER:
      out = Value(static_cast<unsigned long long>(o.via.u64));
      return true;
    case msgpack::type::NEGATIVE_INTEGER:
      out = Value(static_cast<long long>(o.via.i64));
      return true;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: out = Value(o.via.f64); return true;
    case msgpack::type::STR: out = Value(std::string(o.via.str.ptr, o.via.str.size)); return true;
    case msgpack::type::BIN: out = Value(Bin{std::string(o.via.bin.ptr, o.via.bin.size)}); return true;
    case msgpack::type::ARRAY: {
      Value::Array arr;
      arr.resize(o.via.array.size);
      for (uint32_t i = 0; i < o.via.array.size; ++i)
        if (!convert(o.via.array.ptr[i], arr[i], depth + 1, lim, why)) return false;
      out = Value(std::move(arr));
      return true;
    }
    case msgpack::type::MAP: {
      Value::Map map;
      map.reserve(o.via.map.size);
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) {
          why = "map key is not a string";
          return false;
        }
        std::string key(kv.key.via.str.ptr, kv.key.via.str.size);
        Value v;
        if (!convert(kv.val, v, depth + 1, lim, why)) return false;
        map.emplace_back(std::move(key), std::move(v));
      }
      if (map.size() > 1) {
        std::vector<std::string_view> keys;
        keys.reserve(map.size());
        for (const auto& kv : map) keys.push_back(kv.first);
        std::sort(keys.begin(), keys.end());
        if (std::adjacent_find(keys.begin(), keys.end()) != keys.end()) {
          why = "duplicate map key";
          return false;
        }
      }
      out = Value(std::move(map));
      return true;
    }
    case msgpack::type::EXT: why = "MessagePack ext types are not accepted"; return false;
  }
  why = "unknown MessagePack type";
  return false;
}

// Packs straight into the std::string pack() returns: no 8 KiB
// msgpack::sbuffer to allocate and copy out of for every small body.
struct StringWriter {
  std::string& out;
  void write(const char* data, size_t n) { out.append(data, n); }
};

// msgpack-c's pack_double() writes a whole-numbered double as an integer,
// and its range check lets 2^64 through to a conversion to uint64_t, which
// is undefined (found by fuzz_codec). That one value goes out as float 64,
// big-endian, as the format says.
void pack_float(msgpack::packer<StringWriter>& pk, StringWriter& w, double d) {
  if (d != 18446744073709551616.0) {
    pk.pack_double(d);
    return;
  }
  uint64_t bits = 0;
  std::memcpy(&bits, &d, sizeof bits);
  char buf[9] = {static_cast<char>(0xcb)};
  for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  w.write(buf, sizeof buf);
}

void pack_into(msgpack::packer<StringWriter>& pk, StringWriter& w, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Nil: pk.pack_nil(); break;
    case Value::Kind::Bool: v.as_bool() ? pk.pack_true() : pk.pack_false(); break;
    case Value::Kind::Int: pk.pack_int64(v.as_int()); break;
    case Value::Kind::UInt: pk.pack_uint64(v.as_uint()); break;
    case Value::Kind::Float: pack_float(pk, w, v.as_float()); break;
    case Value::Kind::Str:
      pk.pack_str(static_cast<uint32_t>(v.as_str().size()));
      pk.pack_str_body(v.as_str().data(), static_cast<uint32_t>(v.as_str().size()));
      break;
    case Value::Kind::Bin:
      pk.pack_bin(static_cast<uint32_t>(v.as_bin().bytes.size()));
      pk.pack_bin_body(v.as_bin().bytes.data(), static_cast<uint32_t>(v.as_bin().bytes.size()));
      break;
    case Value::Kind::Array:
      pk.pack_array(static_cast<uint32_t>(v.as_array().size()));
      for (const auto& e : v.as_array()) pack_into(pk, w, e);
      break;
    case Value::Kind::Map:
      pk.pack_map(static_cast<uint32_t>(v.as_map().size()));
      for (const auto& [k, e] : v.as_map()) {
        pk.pack_str(static_cast<uint32_t>(k.size()));
        pk.pack_str_body(k.data(), static_cast<uint32_t>(k.size()));
        pack_into(pk, w, e);
      }
      break;
  }
}

}  // namespace

Result<Value> unpack_value(std::string_view bytes, const CodecLimits& lim) {
  if (bytes.size() > lim.max_body)
    return bad("body of " + std::to_string(bytes.size()) + " bytes exceeds the limit of " +
               std::to_string(lim.max_body));
  if (bytes.empty()) return bad("empty body");
  // The parser's objects live in one zone per thread, emptied (down to its
  // first chunk) after each body: no fresh 8 KiB zone per request.
  thread_local msgpack::zone zone;
  struct Emptied {
    ~Emptied() { zone.clear(); }
  } emptied;
  try {
    size_t off = 0;
    msgpack::unpack_limit limit(lim.max_items, lim.max_items, lim.max_body, lim.max_body, 0,
                                lim.max_depth + 1);
    const msgpack::object obj = msgpack::unpack(zone, bytes.data(), bytes.size(), off, nullptr, nullptr, limit);
    if (off != bytes.size()) return bad("trailing bytes after the MessagePack body");
    Value v;
    std::string why;
    if (!convert(obj, v, 0, lim, why)) return bad(why);
    return v;
  } catch (const msgpack::insufficient_bytes&) {
    return bad("truncated MessagePack body");
  } catch (const msgpack::depth_size_overflow&) {
    return bad("nesting too deep");
  } catch (const msgpack::ext_size_overflow&) {
    return bad("MessagePack ext types are not accepted");
  } catch (const msgpack::size_overflow&) {
    return bad("MessagePack body exceeds size limits");
  } catch (const std::exception& e) {
    return bad(std::string("not valid MessagePack: ") + e.what());
  }
}

Result<Value> unpack_map(std::string_view bytes, const CodecLimits& lim) {
  auto v = unpack_value(bytes, lim);
  if (!v) return v;
  if (!v->is_map()) return bad("body is not a map");
  return v;
}

std::string pack(const Value& v) {
  std::string out;
  out.reserve(256);
  StringWriter w{out};
  msgpack::packer<StringWriter> pk(w);
  pack_into(pk, w, v);
  return out;
}

}  // namespace primary
