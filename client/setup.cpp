#include "primary/client/setup.hpp"

#include <tuple>

#include "json.hpp"
#include "common/crypto.hpp"
#include "common/curve.hpp"
#include "common/process.hpp"
#include "common/schema.hpp"

namespace primary::client {
namespace {

Expected<std::string> string_field(const nlohmann::json& o, const std::string& key, bool required) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) {
    if (required) return Failure{"missing '" + key + "'"};
    return std::string();
  }
  if (!it->is_string()) return Failure{"'" + key + "' is not a string"};
  return it->get<std::string>();
}

}  // namespace

Expected<SetupInfo> parse_setup(std::string_view text) {
  auto doc = json::parse(text);
  if (!doc) return Failure{doc.error()};
  if (!doc->is_object()) return Failure{"not a JSON object"};
  const nlohmann::json& o = *doc;
  SetupInfo info;
  for (auto [key, dest, required] :
       {std::tuple{field::kComputer, &info.computer, true}, std::tuple{field::kLicense, &info.license, true},
        std::tuple{field::kSerial, &info.serial, false}, std::tuple{field::kServerKey, &info.server_key, false},
        std::tuple{field::kLeaseKey, &info.lease_key, true}}) {
    auto v = string_field(o, key, required);
    if (!v) return Failure{v.error()};
    *dest = std::move(*v);
  }
  if (!valid_computer_name(info.computer))
    return Failure{"'computer' is not a computer name (1 to 63 of A-Z a-z 0-9 - _ .)"};
  info.computer = normalize_computer_name(info.computer);
  if (info.license.empty() || info.license.size() > 128) return Failure{"'license' must be 1 to 128 bytes"};
  auto key = base64url_decode(info.lease_key);
  if (!key || key->size() != 32) return Failure{"'lease_key' is not the base64url text of 32 bytes"};
  if (!info.server_key.empty() && !valid_z85_key(info.server_key))
    return Failure{"'server_key' is not a Z85 CURVE key (40 characters)"};
  if (auto keys = o.find(field::kLeaseKeys); keys != o.end() && !keys->is_null()) {
    if (!keys->is_array() || keys->size() > 16)
      return Failure{"'lease_keys' must be an array of at most 16 base64url keys"};
    for (const auto& k : *keys) {
      auto raw = k.is_string() ? base64url_decode(k.get_ref<const std::string&>()) : std::nullopt;
      if (!raw || raw->size() != 32) return Failure{"'lease_keys' holds something that is not the base64url text of 32 bytes"};
      info.lease_keys.push_back(k.get<std::string>());
    }
  }
  auto eps = o.find(field::kEndpoints);
  if (eps == o.end() || !eps->is_array() || eps->empty())
    return Failure{"'endpoints' must be a non-empty array of strings"};
  for (const auto& ep : *eps) {
    if (!ep.is_string() || ep.get_ref<const std::string&>().empty())
      return Failure{"'endpoints' must be a non-empty array of strings"};
    info.endpoints.push_back(ep.get<std::string>());
  }
  return info;
}

Expected<SetupInfo> load_setup(const std::string& path) {
  auto text = read_file(path);
  if (!text) return Failure{path + ": cannot be read"};
  if (text->size() > 1024 * 1024) return Failure{path + ": too large for a setup file"};
  auto info = parse_setup(*text);
  if (!info) return Failure{path + ": " + info.error()};
  return info;
}

}  // namespace primary::client
