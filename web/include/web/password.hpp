// The web console's admin password and listen address, shared by
// primary-web, `primaryctl web-password` and primary-server (which refuses a
// non-loopback console without a password before starting anything).
//
// The password is kept only as an Argon2id hash (libsodium's
// crypto_pwhash_str, "$argon2id$..." text) in DATA/keys/web.password,
// mode 0600, one line.
#pragma once

#include <optional>
#include <string>

#include "common/errors.hpp"

namespace primary::web {

// DATA/keys/web.password
std::string password_file(const std::string& data_dir);

// Argon2id hash of `password` (interactive limits: ~64 MiB, a fraction of a second).
Result<std::string> hash_password(const std::string& password);
// Writes the hash for `password` to `path` (0600, atomically); creates the
// parent directory (0700) when missing.
Status set_password(const std::string& path, const std::string& password);
// The stored hash; NOT_FOUND when there is no password file, INTERNAL when
// it is unreadable, not a hash, or readable by group or others.
Result<std::string> read_password_hash(const std::string& path);
// True when `password` matches the stored hash (constant time in libsodium).
bool verify_password(const std::string& hash, const std::string& password);
// Passwords must be 8 to 1024 bytes; the reason when not.
std::optional<std::string> password_problem(const std::string& password);

// The bearer token of GET /metrics (--metrics-token-file): the file's first
// line without trailing blanks, 16 to 4096 bytes. An error (one line, naming
// the file) when it is unreadable, too short, or readable by group or others.
Result<std::string> read_metrics_token(const std::string& path);

// A listen address "HOST:PORT" ("[::1]:PORT" for IPv6; PORT 0: any free port).
struct ListenAddress {
  std::string host;  // without brackets
  int port = 0;
};
Result<ListenAddress> parse_listen_address(const std::string& text);
// 127.0.0.0/8, ::1, localhost.
bool is_loopback_host(const std::string& host);

}  // namespace primary::web
