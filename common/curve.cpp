#include "common/curve.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "common/crypto.hpp"
#include "common/process.hpp"

namespace primary {
namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t' || s.back() == '\n'))
    s.pop_back();
  size_t start = 0;
  while (start < s.size() && (s[start] == ' ' || s[start] == '\t')) ++start;
  return s.substr(start);
}

Result<std::string> read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line))
    return Error{Code::NotFound, "cannot read key file " + path};
  return trim(line);
}

}  // namespace

// Z85 (ZeroMQ RFC 32) and the keys themselves (libsodium's Curve25519, as
// libzmq's CURVE uses) are done here rather than through libzmq, so that
// primary-server, which only makes and checks keys, does not load libzmq.
namespace {
constexpr char kZ85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
}  // namespace

std::string z85_encode(std::string_view raw) {
  if (raw.size() % 4 != 0) return {};
  std::string out;
  out.reserve(raw.size() / 4 * 5);
  for (size_t i = 0; i < raw.size(); i += 4) {
    uint32_t value = 0;
    for (size_t k = 0; k < 4; ++k) value = value << 8 | static_cast<uint8_t>(raw[i + k]);
    char group[5];
    for (int k = 4; k >= 0; --k) {
      group[k] = kZ85[value % 85];
      value /= 85;
    }
    out.append(group, 5);
  }
  return out;
}

std::optional<std::string> z85_decode(std::string_view text) {
  if (text.size() % 5 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 5 * 4);
  for (size_t i = 0; i < text.size(); i += 5) {
    uint64_t value = 0;
    for (size_t k = 0; k < 5; ++k) {
      const char* at = text[i + k] ? std::strchr(kZ85, text[i + k]) : nullptr;
      if (!at) return std::nullopt;
      value = value * 85 + static_cast<uint64_t>(at - kZ85);
    }
    if (value > 0xffffffffu) return std::nullopt;
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(value >> shift & 0xff);
  }
  return out;
}

bool valid_z85_key(const std::string& text) { return text.size() == 40 && z85_decode(text).has_value(); }

CurveKeypair curve_keypair() {
  crypto_init();
  unsigned char pub[crypto_box_PUBLICKEYBYTES], sec[crypto_box_SECRETKEYBYTES];
  crypto_box_keypair(pub, sec);
  CurveKeypair kp{z85_encode({reinterpret_cast<const char*>(pub), sizeof pub}),
                  z85_encode({reinterpret_cast<const char*>(sec), sizeof sec})};
  sodium_memzero(sec, sizeof sec);
  return kp;
}

std::string curve_public_of(const std::string& secret_z85) {
  if (secret_z85.size() != 40) return {};
  auto secret = z85_decode(secret_z85);
  if (!secret) return {};
  crypto_init();
  unsigned char pub[crypto_scalarmult_BYTES];
  const int rc = crypto_scalarmult_base(pub, reinterpret_cast<const unsigned char*>(secret->data()));
  sodium_memzero(secret->data(), secret->size());
  if (rc != 0) return {};
  return z85_encode({reinterpret_cast<const char*>(pub), sizeof pub});
}

Status write_curve_keypair(const std::string& base, const CurveKeypair& kp) {
  if (auto written = write_new_file(base + ".key", kp.secret_key + "\n", 0600); !written) return written;
  return write_new_file(base + ".pub", kp.public_key + "\n", 0644);
}

Result<std::string> read_curve_secret(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return Error{Code::NotFound, "cannot read key file " + path + ": " + std::strerror(errno)};
  if (st.st_mode & 077)
    return Error{Code::Unauthorized,
                 "secret key file " + path + " is readable by group or others (chmod 600 it)"};
  auto line = read_first_line(path);
  if (!line) return line;
  if (!valid_z85_key(*line)) return Error{Code::BadRequest, "key file " + path + " does not hold a Z85 CURVE key"};
  return line;
}

Result<std::string> read_curve_public(const std::string& path) {
  auto line = read_first_line(path);
  if (!line) return line;
  if (!valid_z85_key(*line)) return Error{Code::BadRequest, "key file " + path + " does not hold a Z85 CURVE key"};
  return line;
}

Result<CurveKeypair> ensure_curve_keypair(const std::string& base) {
  if (::access((base + ".key").c_str(), F_OK) != 0) {
    if (auto written = write_curve_keypair(base, curve_keypair()); !written)
      if (::access((base + ".key").c_str(), F_OK) != 0) return written.error();
  }
  auto secret = read_curve_secret(base + ".key");
  if (!secret) return secret.error();
  return CurveKeypair{curve_public_of(*secret), *secret};
}

bool valid_key_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && name[0] != '.' &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c == '.';
         });
}

std::string key_fingerprint(std::string_view z85_key) { return "key:" + hex_encode(sha256(z85_key).substr(0, 4)); }

Result<std::map<std::string, std::string>> read_allow_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error{Code::NotFound, "cannot read admin key list " + path};
  std::map<std::string, std::string> keys;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    // '#' is a Z85 digit too: a comment starts a line or follows a blank.
    std::string comment;
    for (size_t i = 0; i < line.size(); ++i)
      if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
        comment = line.substr(i + 1);
        line.resize(i);
        break;
      }
    line = trim(line);
    if (line.empty()) continue;
    if (!valid_z85_key(line))
      return Error{Code::BadRequest, path + " line " + std::to_string(n) + ": not a Z85 public key"};
    // The name: the comment's first word up to its first character that
    // cannot be in a name ("# alice, night shift" names alice).
    std::istringstream words(comment);
    std::string name;
    words >> name;
    name.resize(static_cast<size_t>(
        std::find_if(name.begin(), name.end(), [](char c) { return !valid_key_name(std::string(1, c)) && c != '.'; }) -
        name.begin()));
    keys[line] = valid_key_name(name) ? name : key_fingerprint(line);
  }
  return keys;
}

}  // namespace primary
