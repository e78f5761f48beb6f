#include "common/redis_url.hpp"

#include <charconv>
#include <optional>
#include <string>

namespace primary {

namespace {

// The message never quotes the URL: it may hold a password.
Error bad_url(std::string_view why) {
  return Error{Code::BadRequest, "bad redis URL: " + std::string(why)};
}

std::optional<int> parse_int(std::string_view s, int min, int max) {
  int v = 0;
  if (s.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) return std::nullopt;
  return v;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// Splits "[user]:password" into url->user and url->password.
Status parse_userinfo(std::string_view info, RedisUrl* url) {
  size_t colon = info.find(':');
  if (colon == std::string_view::npos)
    return bad_url("credentials must be [user]:password@");
  auto user = percent_decode(info.substr(0, colon));
  auto password = percent_decode(info.substr(colon + 1));
  if (!user || !password) return bad_url("bad percent-escape in credentials");
  url->user = std::move(*user);
  url->password = std::move(*password);
  return {};
}

// "host[:port]" or "[v6]:port" into *addr; the port defaults to `def_port`.
Status parse_address(std::string_view hostport, int def_port,
                                   RedisUrl::Address* addr) {
  std::string_view port;
  if (!hostport.empty() && hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return bad_url("unterminated [IPv6] host");
    addr->host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad_url("expected :port after ]");
      port = after.substr(1);
      if (port.empty()) return bad_url("empty port");
    }
  } else {
    size_t colon = hostport.find(':');
    addr->host = hostport.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = hostport.substr(colon + 1);
      if (port.find(':') != std::string_view::npos)
        return bad_url("an IPv6 host must be written in [brackets]");
      if (port.empty()) return bad_url("empty port");
    }
  }
  if (addr->host.empty()) return bad_url("missing host");
  if (addr->host.find_first_of("@/?#[], ") != std::string::npos) return bad_url("bad host");
  addr->port = def_port;
  if (!port.empty()) {
    auto p = parse_int(port, 1, 65535);
    if (!p) return bad_url("port must be 1..65535");
    addr->port = *p;
  }
  return {};
}

Result<RedisUrl> parse_tcp(std::string_view rest) {
  RedisUrl url;
  url.kind = RedisUrl::Kind::Tcp;
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    if (auto st = parse_userinfo(rest.substr(0, at), &url); !st) return st.error();
    rest.remove_prefix(at + 1);
  }
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  RedisUrl::Address addr;
  if (auto st = parse_address(hostport, 6379, &addr); !st) return st.error();
  url.host = std::move(addr.host);
  url.port = addr.port;
  if (!path.empty()) {
    auto db = parse_int(path, 0, 1 << 20);
    if (!db) return bad_url("path must be /<db number>");
    url.db = *db;
  }
  return url;
}

// name=value&... into *url; `sentinel` also allows the sentinel_* names.
Status parse_query(std::string_view query, bool sentinel, RedisUrl* url) {
  bool password_given = !url->password.empty() || !url->user.empty();
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) return bad_url("query parameters must be name=value");
    std::string_view name = pair.substr(0, eq);
    auto value = percent_decode(pair.substr(eq + 1));
    if (!value) return bad_url("bad percent-escape in query");
    if (name == "db") {
      auto db = parse_int(*value, 0, 1 << 20);
      if (!db) return bad_url("db must be a number >= 0");
      url->db = *db;
    } else if (name == "password" || name == "user") {
      if (password_given && sentinel)
        return bad_url("credentials given both before @ and as " + std::string(name) + "=");
      (name == "password" ? url->password : url->user) = std::move(*value);
    } else if (sentinel && name == "sentinel_password") {
      url->sentinel_password = std::move(*value);
    } else if (sentinel && name == "sentinel_user") {
      url->sentinel_user = std::move(*value);
    } else {
      return bad_url("unknown query parameter '" + std::string(name) + "' (db, password, user" +
                     (sentinel ? ", sentinel_password, sentinel_user)" : ")"));
    }
  }
  return {};
}

Result<RedisUrl> parse_unix(std::string_view rest) {
  RedisUrl url;
  url.kind = RedisUrl::Kind::Unix;
  if (!rest.empty() && rest.front() != '/') {
    size_t at = rest.find("@/");
    if (at == std::string_view::npos) return bad_url("unix socket path must be absolute");
    if (auto st = parse_userinfo(rest.substr(0, at), &url); !st) return st.error();
    rest.remove_prefix(at + 1);
  }
  size_t q = rest.find('?');
  url.path = rest.substr(0, q);
  if (url.path.size() < 2 || url.path.front() != '/')
    return bad_url("unix socket path must be absolute");
  if (q == std::string_view::npos) return url;
  if (auto st = parse_query(rest.substr(q + 1), false, &url); !st) return st.error();
  return url;
}

constexpr size_t kMaxSentinels = 32;

Result<RedisUrl> parse_sentinel(std::string_view rest) {
  RedisUrl url;
  url.kind = RedisUrl::Kind::Sentinel;
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos)
    return bad_url("missing master name: sentinel://host:port[,host:port...]/MASTER_NAME");
  std::string_view authority = rest.substr(0, slash);
  std::string_view after = rest.substr(slash + 1);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    if (auto st = parse_userinfo(authority.substr(0, at), &url); !st) return st.error();
    authority.remove_prefix(at + 1);
  }
  while (true) {
    size_t comma = authority.find(',');
    std::string_view one = authority.substr(0, comma);
    if (one.empty()) return bad_url("empty Sentinel address in the list");
    RedisUrl::Address addr;
    if (auto st = parse_address(one, 26379, &addr); !st) return st.error();
    if (url.sentinels.size() == kMaxSentinels)
      return bad_url("more than " + std::to_string(kMaxSentinels) + " Sentinels");
    url.sentinels.push_back(std::move(addr));
    if (comma == std::string_view::npos) break;
    authority.remove_prefix(comma + 1);
  }
  size_t q = after.find('?');
  std::string_view name = after.substr(0, q);
  if (name.empty())
    return bad_url("missing master name: sentinel://host:port[,host:port...]/MASTER_NAME");
  if (name.size() > 128 || name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                  "0123456789._-") != std::string_view::npos)
    return bad_url("master name must be 1 to 128 of A-Z a-z 0-9 . _ -");
  url.master_name = name;
  if (q != std::string_view::npos)
    if (auto st = parse_query(after.substr(q + 1), true, &url); !st) return st.error();
  return url;
}

}  // namespace

Result<RedisUrl> parse_redis_url(std::string_view url) {
  constexpr std::string_view tcp = "redis://", unix_scheme = "unix://";
  if (url.substr(0, tcp.size()) == tcp) return parse_tcp(url.substr(tcp.size()));
  if (url.substr(0, unix_scheme.size()) == unix_scheme)
    return parse_unix(url.substr(unix_scheme.size()));
  constexpr std::string_view sentinel_scheme = "sentinel://";
  if (url.substr(0, sentinel_scheme.size()) == sentinel_scheme)
    return parse_sentinel(url.substr(sentinel_scheme.size()));
  return bad_url(
      "expected redis://host:port/db, unix:///path?db=N or sentinel://host:port,.../MASTER_NAME");
}

namespace {
std::string bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}
}  // namespace

std::string redacted(const RedisUrl& url) {
  bool creds = !url.user.empty() || !url.password.empty();
  if (url.kind == RedisUrl::Kind::Unix) {
    std::string s = "unix://" + url.path + "?db=" + std::to_string(url.db);
    if (!url.user.empty()) s += "&user=" + url.user;
    if (!url.password.empty()) s += "&password=***";
    return s;
  }
  if (url.kind == RedisUrl::Kind::Sentinel) {
    std::string s = "sentinel://" + (creds ? url.user + ":***@" : std::string());
    for (size_t i = 0; i < url.sentinels.size(); ++i)
      s += (i ? "," : "") + bracketed(url.sentinels[i].host) + ":" +
           std::to_string(url.sentinels[i].port);
    s += "/" + url.master_name + "?db=" + std::to_string(url.db);
    if (!url.sentinel_user.empty()) s += "&sentinel_user=" + url.sentinel_user;
    if (!url.sentinel_password.empty()) s += "&sentinel_password=***";
    return s;
  }
  std::string host = bracketed(url.host);
  return "redis://" + (creds ? url.user + ":***@" : std::string()) + host + ":" +
         std::to_string(url.port) + "/" + std::to_string(url.db);
}

std::optional<int> parse_port(std::string_view text) { return parse_int(text, 1, 65535); }

}  // namespace primary
