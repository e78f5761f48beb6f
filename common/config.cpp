#include "common/config.hpp"

#include <toml++/toml.h>

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <set>

namespace primary {

namespace {
const std::set<std::string>& product_settings() {
  static const std::set<std::string> names = {
      "data-dir", "front", "events", "workers-endpoint", "event-sink", "redis",
      "license-workers", "updater-workers", "admin-workers",
      "public-endpoints", "started-at", "broker-front", "slots", "insecure", "vendor-key",
      "log-level", "max-body", "queue-limit", "request-timeout-ms", "heartbeat-ms",
      "heartbeat-liveness", "redis-server", "broker", "slots", "check-interval-s",
      "unlicensed-interval-s", "grace-s", "clock-skew-s", "clock-jump-s", "client-endpoints", "lease-key", "update-feed", "sync-interval-s", "update-dir", "auto-approve",
      "admin-keys", "server-key", "trusted-keys", "client-key", "server-public", "web", "no-web", "log-file", "log-file-size", "log-file-count",
      "event-log-cap", "endpoints-file", "restart-max-ms", "stop-timeout-ms",
      "tls-cert", "tls-key", "web-session-s", "web-idle-exit-s",
      "redis-wait-replicas", "redis-wait-timeout-ms",
      "metrics-interval-ms", "metrics-token-file", "metrics-require-token",
      "stale-unseen-s", "stale-lost-s",
      "stale-recount-s"};
  return names;
}

bool parse_int(const std::string& text, int64_t& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

bool parse_double(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || *end != '\0' || v != v) return false;
  out = v;
  return true;
}

bool parse_bool(const std::string& text, bool& out) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") return out = true, true;
  if (text == "0" || text == "false" || text == "no" || text == "off" || text.empty())
    return out = false, true;
  return false;
}
}  // namespace

bool known_product_setting(const std::string& name) { return product_settings().count(name) > 0; }

std::string env_name(const std::string& setting) {
  std::string out = "PRIMARY_";
  for (char c : setting) out += (c == '-') ? '_' : static_cast<char>(std::toupper(c));
  return out;
}

Config::Config(std::string program, std::string description)
    : program_(std::move(program)), app_(std::move(description), program_) {
  app_.set_help_flag("-h,--help", "Print this help and exit");
}

Config::Setting& Config::setting(const std::string& name) { return settings_.at(name); }
const Config::Setting& Config::setting(const std::string& name) const { return settings_.at(name); }

void Config::add_string(const std::string& name, std::string def, const std::string& help) {
  Setting s;
  s.kind = Kind::Str;
  s.def = std::move(def);
  auto [it, _] = settings_.emplace(name, std::move(s));
  order_.push_back(name);
  it->second.option = app_.add_option("--" + name, it->second.cli_value,
                                      help + " [env " + env_name(name) + "]");
}

void Config::add_int(const std::string& name, int64_t def, int64_t min, int64_t max,
                     const std::string& help) {
  Setting s;
  s.kind = Kind::Int;
  s.def = std::to_string(def);
  s.imin = min;
  s.imax = max;
  auto [it, _] = settings_.emplace(name, std::move(s));
  order_.push_back(name);
  it->second.option = app_.add_option("--" + name, it->second.cli_value,
                                      help + " (default " + std::to_string(def) + ") [env " +
                                          env_name(name) + "]");
}

void Config::add_double(const std::string& name, double def, double min, double max,
                        const std::string& help) {
  Setting s;
  s.kind = Kind::Double;
  s.def = std::to_string(def);
  s.dmin = min;
  s.dmax = max;
  auto [it, _] = settings_.emplace(name, std::move(s));
  order_.push_back(name);
  it->second.option = app_.add_option("--" + name, it->second.cli_value,
                                      help + " [env " + env_name(name) + "]");
}

void Config::add_flag(const std::string& name, const std::string& help) {
  Setting s;
  s.kind = Kind::Flag;
  s.def = "false";
  auto [it, _] = settings_.emplace(name, std::move(s));
  order_.push_back(name);
  it->second.option =
      app_.add_flag("--" + name, it->second.cli_flag, help + " [env " + env_name(name) + "]");
}

void Config::add_config_file() {
  has_config_file_ = true;
  app_.add_option("--config", config_path_, "TOML config file [env PRIMARY_CONFIG]");
}

void Config::fail(const std::string& message) const {
  std::cerr << program_ << ": " << message << std::endl;
  std::exit(2);
}

void Config::check_value(const std::string& name, Setting& s, const std::string& origin) {
  switch (s.kind) {
    case Kind::Str: return;
    case Kind::Int: {
      int64_t v;
      if (!parse_int(s.value, v) || v < s.imin || v > s.imax)
        fail("bad value for " + name + " (" + origin + "): '" + s.value + "' (expected an integer " +
             std::to_string(s.imin) + ".." + std::to_string(s.imax) + ")");
      return;
    }
    case Kind::Double: {
      double v;
      if (!parse_double(s.value, v) || v < s.dmin || v > s.dmax)
        fail("bad value for " + name + " (" + origin + "): '" + s.value + "' (expected a number " +
             std::to_string(s.dmin) + ".." + std::to_string(s.dmax) + ")");
      return;
    }
    case Kind::Flag: {
      bool b;
      if (!parse_bool(s.value, b))
        fail("bad value for " + name + " (" + origin + "): '" + s.value + "' (expected true or false)");
      s.value = b ? "true" : "false";
      return;
    }
  }
}

void Config::parse(int argc, char** argv) {
  try {
    app_.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::exit(app_.exit(e));
  } catch (const CLI::CallForAllHelp& e) {
    std::exit(app_.exit(e));
  } catch (const CLI::CallForVersion& e) {
    std::exit(app_.exit(e));
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    fail(what + " (try --help)");
  }

  // Config file values (lowest precedence but defaults).
  std::map<std::string, std::string> file_values;
  if (has_config_file_) {
    if (config_path_.empty())
      if (const char* e = std::getenv("PRIMARY_CONFIG")) config_path_ = e;
    if (!config_path_.empty()) {
      toml::table tbl;
      try {
        tbl = toml::parse_file(config_path_);
      } catch (const toml::parse_error& err) {
        fail("config " + config_path_ + ": " + std::string(err.description()) + " at line " +
             std::to_string(err.source().begin.line));
      }
      for (const auto& [k, node] : tbl) {
        std::string key(k.str());
        for (auto& c : key)
          if (c == '_') c = '-';
        if (!known_product_setting(key) && !settings_.count(key))
          fail("config " + config_path_ + ": unknown key '" + std::string(k.str()) + "'");
        if (!settings_.count(key)) continue;
        std::string text;
        if (auto s = node.value<std::string>()) text = *s;
        else if (auto i = node.value<int64_t>()) text = std::to_string(*i);
        else if (auto d = node.value<double>()) text = std::to_string(*d);
        else if (auto b = node.value<bool>()) text = *b ? "true" : "false";
        else fail("config " + config_path_ + ": key '" + std::string(k.str()) + "' must be a string, number or boolean");
        file_values[key] = text;
      }
    }
  }

  for (const auto& name : order_) {
    Setting& s = settings_.at(name);
    std::string origin;
    if (s.option->count() > 0) {
      s.value = s.kind == Kind::Flag ? (s.cli_flag ? "true" : "false") : s.cli_value;
      origin = "--" + name;
      s.given = true;
    } else if (const char* e = std::getenv(env_name(name).c_str()); e && *e) {
      s.value = e;
      origin = env_name(name);
      s.given = true;
    } else if (auto it = file_values.find(name); it != file_values.end()) {
      s.value = it->second;
      origin = "config " + config_path_;
      s.given = true;
    } else {
      s.value = s.def;
      origin = "default";
    }
    check_value(name, s, origin);
  }
}

const std::string& Config::str(const std::string& name) const { return setting(name).value; }

int64_t Config::integer(const std::string& name) const {
  int64_t v = 0;
  parse_int(setting(name).value, v);
  return v;
}

double Config::number(const std::string& name) const {
  double v = 0;
  parse_double(setting(name).value, v);
  return v;
}

bool Config::flag(const std::string& name) const { return setting(name).value == "true"; }

bool Config::given(const std::string& name) const { return setting(name).given; }

}  // namespace primary
