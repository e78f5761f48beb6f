#include "common/curve.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace primary {
namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t' || s.back() == '\n'))
    s.pop_back();
  size_t start = 0;
  while (start < s.size() && (s[start] == ' ' || s[start] == '\t')) ++start;
  return s.substr(start);
}

std::optional<Error> write_text(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Error{Code::Internal, "cannot create " + path + ": " + std::strerror(errno)};
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return Error{Code::Internal, "cannot write " + path};
  return std::nullopt;
}

Result<std::string> read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line))
    return Error{Code::NotFound, "cannot read key file " + path};
  return trim(line);
}

}  // namespace

bool valid_z85_key(const std::string& text) {
  if (text.size() != 40) return false;
  uint8_t raw[32];
  return zmq_z85_decode(raw, text.c_str()) != nullptr;
}

CurveKeypair curve_keypair() {
  char pub[41], sec[41];
  zmq_curve_keypair(pub, sec);
  return {pub, sec};
}

std::string curve_public_of(const std::string& secret_z85) {
  if (!valid_z85_key(secret_z85)) return {};
  char pub[41];
  if (zmq_curve_public(pub, secret_z85.c_str()) != 0) return {};
  return pub;
}

std::optional<Error> write_curve_keypair(const std::string& base, const CurveKeypair& kp) {
  if (auto err = write_text(base + ".key", kp.secret_key + "\n", 0600)) return err;
  return write_text(base + ".pub", kp.public_key + "\n", 0644);
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
    if (auto err = write_curve_keypair(base, curve_keypair()))
      if (::access((base + ".key").c_str(), F_OK) != 0) return *err;
  }
  auto secret = read_curve_secret(base + ".key");
  if (!secret) return secret.error();
  return CurveKeypair{curve_public_of(*secret), *secret};
}

Result<std::set<std::string>> read_allow_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error{Code::NotFound, "cannot read admin key list " + path};
  std::set<std::string> keys;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    // '#' is a Z85 digit too: a comment starts a line or follows a blank.
    for (size_t i = 0; i < line.size(); ++i)
      if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
        line.resize(i);
        break;
      }
    line = trim(line);
    if (line.empty()) continue;
    if (!valid_z85_key(line))
      return Error{Code::BadRequest, path + " line " + std::to_string(n) + ": not a Z85 public key"};
    keys.insert(line);
  }
  return keys;
}

}  // namespace primary
