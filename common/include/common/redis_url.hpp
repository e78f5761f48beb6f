// Redis addresses as URLs: redis://, unix:// and sentinel://, parsed and
// written back with the password masked.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.hpp"

namespace primary {

// Where a Redis lives and how to log in; built by parse_redis_url.
struct RedisUrl {
  enum class Kind { Tcp, Unix, Sentinel };
  struct Address {
    std::string host;  // name or address, IPv6 without brackets
    int port = 0;
  };
  Kind kind = Kind::Tcp;
  std::string host;      // Tcp: name or address, IPv6 without brackets
  int port = 6379;       // Tcp
  std::string path;      // Unix: absolute socket path
  std::vector<Address> sentinels;  // Sentinel: at least one, in the order given
  std::string master_name;         // Sentinel: the name the Sentinels monitor
  std::string sentinel_user;       // Sentinel: AUTH to the Sentinels themselves
  std::string sentinel_password;   // empty: no AUTH to the Sentinels
  int db = 0;
  std::string user;      // empty: AUTH with the password alone
  std::string password;  // empty: no AUTH
};

// Parses redis://[[user]:password@]host[:port][/db],
// unix://[[user]:password@]/abs/path[?db=N][&password=P][&user=U] or
// sentinel://[[user]:password@]host[:port][,host[:port]...]/MASTER_NAME
//   [?db=N][&password=P][&user=U][&sentinel_password=P][&sentinel_user=U]
// (Sentinel port 26379 by default; credentials are the master's). User and
// password are percent-decoded. Bad input -> Code::BadRequest.
Result<RedisUrl> parse_redis_url(std::string_view url);

// The URL in canonical form with the password masked, for logs.
std::string redacted(const RedisUrl& url);

// A TCP port in decimal, 1 to 65535 (as a Sentinel reports a master's).
std::optional<int> parse_port(std::string_view text);

}  // namespace primary
