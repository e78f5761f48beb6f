#include "json.hpp"

#include <set>
#include <string>
#include <vector>

namespace primary::client::json {

Expected<nlohmann::json> parse(std::string_view text) {
  // The parser reports each key as it reads it; a key seen twice in the
  // object being read is remembered and refused after the parse.
  std::vector<std::set<std::string>> open;
  std::string duplicate;
  auto watch = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) {
      open.emplace_back();
    } else if (event == E::object_end) {
      if (!open.empty()) open.pop_back();
    } else if (event == E::key && !open.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  try {
    nlohmann::json doc = nlohmann::json::parse(text.begin(), text.end(), watch);
    if (!duplicate.empty()) return Failure{"duplicate key '" + duplicate + "'"};
    return doc;
  } catch (const nlohmann::json::parse_error& e) {
    const std::string what = e.what();
    if (what.find("expected end of input") != std::string::npos)
      return Failure{"trailing text after the JSON value at byte " + std::to_string(e.byte)};
    return Failure{"not JSON at byte " + std::to_string(e.byte) + ": " + what};
  } catch (const nlohmann::json::exception& e) {
    // A number out of range (out_of_range.406) and any other refusal.
    return Failure{std::string("not a usable JSON document: ") + e.what()};
  }
}

}  // namespace primary::client::json
