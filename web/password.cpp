#include "web/password.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/crypto.hpp"
#include "common/process.hpp"

namespace primary::web {

std::string password_file(const std::string& data_dir) { return data_dir + "/keys/web.password"; }

std::optional<std::string> password_problem(const std::string& password) {
  if (password.size() < 8) return "the password must have at least 8 characters";
  if (password.size() > 1024) return "the password must have at most 1024 bytes";
  return std::nullopt;
}

Result<std::string> hash_password(const std::string& password) {
  crypto_init();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(),
                            crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                            crypto_pwhash_ALG_ARGON2ID13) != 0)
    return Error{Code::Internal, "out of memory hashing the password"};
  return std::string(out);
}

Status set_password(const std::string& path, const std::string& password) {
  if (auto why = password_problem(password)) return Error{Code::BadRequest, *why};
  auto hash = hash_password(password);
  if (!hash) return hash.error();
  // DATA and DATA/keys, private, as primary-server makes them.
  const std::filesystem::path keys = std::filesystem::path(path).parent_path();
  for (const auto& dir : {keys.parent_path(), keys})
    if (!dir.empty() && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return Error{Code::Internal, "cannot create " + dir.string() + ": " + std::strerror(errno)};
  return write_file_atomic(path, *hash + "\n", 0600);
}

Result<std::string> read_password_hash(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Error{Code::NotFound, "no console password (" + path + ")"};
    return Error{Code::Internal, "cannot read " + path + ": " + std::strerror(errno)};
  }
  if (st.st_mode & 077)
    return Error{Code::Internal, path + " is readable by group or others; chmod 600 it"};
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return Error{Code::Internal, "cannot read " + path};
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (!line.starts_with("$argon2id$") || line.size() >= crypto_pwhash_STRBYTES)
    return Error{Code::Internal, path + " does not hold an Argon2id hash; set it again with "
                                        "`primaryctl web-password`"};
  return line;
}

bool verify_password(const std::string& hash, const std::string& password) {
  crypto_init();
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

Result<ListenAddress> parse_listen_address(const std::string& text) {
  ListenAddress a;
  std::string port;
  if (text.starts_with("[")) {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return Error{Code::BadRequest, "bad listen address '" + text + "' (expected [IPV6]:PORT)"};
    a.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || text.find(':') != colon)
      return Error{Code::BadRequest, "bad listen address '" + text + "' (expected HOST:PORT)"};
    a.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), a.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || a.port < 0 ||
      a.port > 65535 || a.host.empty())
    return Error{Code::BadRequest, "bad listen address '" + text + "' (expected HOST:PORT, port 0-65535)"};
  return a;
}

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

Result<std::string> read_metrics_token(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0)
    return Error{Code::NotFound, "cannot read metrics token file " + path + ": " + std::strerror(errno)};
  if (st.st_mode & 077)
    return Error{Code::Unauthorized, "metrics token file " + path + " is readable by group or others (chmod 600 it)"};
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return Error{Code::NotFound, "cannot read metrics token file " + path};
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
  if (line.size() < 16 || line.size() > 4096)
    return Error{Code::BadRequest,
                 "metrics token file " + path + " must hold one line of 16 to 4096 bytes (e.g. openssl rand -hex 32)"};
  return line;
}

}  // namespace primary::web
