#include "common/tokens.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/schema.hpp"

namespace primary {
namespace {

Error invalid(std::string why) { return Error{Code::InvalidUnlockCode, std::move(why)}; }

const std::string* str_field(const Value& m, std::string_view key) {
  const Value* v = m.find(key);
  return (v && v->is_str()) ? &v->as_str() : nullptr;
}

std::optional<int64_t> int_field(const Value& m, std::string_view key) {
  const Value* v = m.find(key);
  if (v && v->is_int()) return v->as_int();
  return std::nullopt;
}

// The map a verified payload holds: small and flat, or refused.
Result<Value> signed_payload_map(std::string_view payload) {
  CodecLimits lim;
  lim.max_body = 4096;
  lim.max_depth = 2;
  auto map = unpack_map(payload, lim);
  if (!map) return Error{Code::BadRequest, "signed payload is not a map"};
  return map;
}

}  // namespace

std::string sign_token(const Value& payload, std::string_view secret_key) {
  const std::string bytes = pack(payload);
  return base64url_encode(bytes) + "." + base64url_encode(sign_detached(bytes, secret_key));
}

Result<Value> open_token(std::string_view token, std::string_view public_key) {
  if (token.size() > 4096) return Error{Code::BadRequest, "token too long"};
  const auto dot = token.find('.');
  if (dot == std::string_view::npos) return Error{Code::BadRequest, "not a signed token"};
  auto payload = base64url_decode(token.substr(0, dot));
  auto sig = base64url_decode(token.substr(dot + 1));
  if (!payload || !sig) return Error{Code::BadRequest, "token is not base64url"};
  if (!sign_verify(*payload, *sig, public_key)) return Error{Code::BadRequest, "bad signature"};
  return signed_payload_map(*payload);
}

Status write_key_file(const std::string& path, std::string_view raw, unsigned mode) {
  return write_new_file(path, base64url_encode(raw) + "\n", static_cast<mode_t>(mode));
}

Result<std::string> read_key_file(const std::string& path, size_t size, bool secret) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return Error{Code::NotFound, "cannot read key file " + path + ": " + std::strerror(errno)};
  if (secret && (st.st_mode & 077))
    return Error{Code::Unauthorized, "secret key file " + path +
                                         " is readable by group or others (chmod 600 it)"};
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line))
    return Error{Code::NotFound, "cannot read key file " + path};
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  auto raw = base64url_decode(line);
  if (!raw || raw->size() != size)
    return Error{Code::BadRequest, "key file " + path + " does not hold a " +
                                       std::to_string(size) + "-byte base64url key"};
  return *raw;
}

Result<std::string> ensure_signing_key(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0) {
    const SignKeypair kp = sign_keypair();
    if (auto written = write_key_file(path, kp.secret_key, 0600); !written) {
      if (::access(path.c_str(), F_OK) != 0) return written.error();  // lost a race: fall through and read
    }
  }
  return read_key_file(path, 64, true);
}

std::string make_unlock_code(const UnlockCode& c, std::string_view vendor_secret) {
  return sign_token(Value(Value::Map{{field::kSerial, Value(c.serial)},
                                     {field::kLicenses, Value(c.licenses)},
                                     {"registration", Value(c.registration)},
                                     {field::kIssued, Value(c.issued)}}),
                    vendor_secret);
}

Result<UnlockCode> parse_unlock_code(std::string_view text, std::string_view vendor_public) {
  auto opened = open_token(text, vendor_public);
  if (!opened) return invalid("unlock code rejected: " + opened.error().message);
  const Value& m = *opened;
  UnlockCode c;
  const std::string* serial = str_field(m, field::kSerial);
  const std::string* reg = str_field(m, "registration");
  auto licenses = int_field(m, field::kLicenses);
  auto issued = int_field(m, field::kIssued);
  if (!serial || !reg || !licenses || !issued || *licenses < 0 || *licenses > 100000000)
    return invalid("unlock code has missing or bad fields");
  c.serial = *serial;
  c.registration = *reg;
  c.licenses = *licenses;
  c.issued = *issued;
  return c;
}

std::string make_seat_code(const SeatCode& c, std::string_view vendor_secret) {
  Value::Map m{{field::kKind, Value(c.kind)},
               {field::kRegistration, Value(c.registration)},
               {field::kComputer, Value(c.computer)},
               {field::kLicense, Value(c.license)}};
  if (!c.to.empty()) m.emplace_back(field::kTo, Value(c.to));
  m.emplace_back(field::kIssued, Value(c.issued));
  m.emplace_back(field::kExpires, Value(c.expires));
  m.emplace_back(field::kId, Value(c.id));
  const std::string bytes = pack(Value(std::move(m)));
  return base64url_encode(bytes) + "." +
         base64url_encode(sign_detached(std::string(kSeatCodeDomain) + bytes, vendor_secret));
}

Result<SeatCode> parse_seat_code(std::string_view text, std::string_view vendor_public) {
  const auto refuse = [](std::string why) { return Error{Code::InvalidSeatCode, "seat code rejected: " + why}; };
  if (text.size() > 4096) return refuse("too long");
  const auto dot = text.find('.');
  if (dot == std::string_view::npos || text.find('.', dot + 1) != std::string_view::npos)
    return refuse("not a seat code");
  auto payload = base64url_decode(text.substr(0, dot));
  auto sig = base64url_decode(text.substr(dot + 1));
  if (!payload || !sig) return refuse("not base64url");
  if (!sign_verify(std::string(kSeatCodeDomain) + *payload, *sig, vendor_public))
    return refuse("bad signature (tampered, or not signed by this server's vendor)");
  auto map = signed_payload_map(*payload);
  if (!map) return refuse(map.error().message);
  const Value& m = *map;
  const std::string* kind = str_field(m, field::kKind);
  const std::string* reg = str_field(m, field::kRegistration);
  const std::string* computer = str_field(m, field::kComputer);
  const std::string* license = str_field(m, field::kLicense);
  const std::string* to = str_field(m, field::kTo);
  const std::string* id = str_field(m, field::kId);
  auto issued = int_field(m, field::kIssued);
  auto expires = int_field(m, field::kExpires);
  if (!kind || !reg || !computer || !license || !id || !issued || !expires || id->empty() ||
      !valid_computer_name(*computer) || (*kind != seat::kRetire && *kind != seat::kTransfer) ||
      ((*kind == seat::kTransfer) != (to != nullptr)) || (to && !valid_computer_name(*to)))
    return refuse("missing or bad fields");
  SeatCode c;
  c.kind = *kind;
  c.registration = *reg;
  c.computer = normalize_computer_name(*computer);
  c.license = *license;
  if (to) c.to = normalize_computer_name(*to);
  c.issued = *issued;
  c.expires = *expires;
  c.id = *id;
  return c;
}

bool valid_serial(std::string_view s) {
  // Same alphabet as computer names, one character longer.
  return !s.empty() && s.size() <= 64 && valid_computer_name(s.substr(0, 63)) &&
         (s.size() < 64 || valid_computer_name(s.substr(63)));
}

std::string registration_code(std::string_view serial, std::string_view install_id) {
  std::string material = "primary-registration-v1";
  material += '\0';
  material += serial;
  material += '\0';
  material += install_id;
  std::string hex = hex_encode(sha256(material).substr(0, 12));
  for (auto& ch : hex) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return "PS1-" + std::string(serial) + "-" + hex;
}

std::optional<std::string> registration_serial(std::string_view code) {
  if (!code.starts_with("PS1-") || code.size() < 4 + 1 + 1 + 24) return std::nullopt;
  const auto last = code.rfind('-');
  if (last == std::string_view::npos || code.size() - last - 1 != 24 || last <= 4) return std::nullopt;
  std::string serial(code.substr(4, last - 4));
  if (!valid_serial(serial)) return std::nullopt;
  return serial;
}

namespace {

// Batch leases: leaf = SHA-256(0x00 || payload), node = SHA-256(0x01 ||
// left || right), an odd node out goes up a level unchanged; the signature
// is over kLeaseRoot || root. The prefixes keep a leaf from passing for a
// node and a root signature from passing for a plain token's.
constexpr std::string_view kLeaseRoot = "primary-lease-root-v1\n";
constexpr size_t kProofStep = 33;        // side (0: sibling on the left, 1: on the right) + hash
constexpr size_t kMaxProofSteps = 16;
constexpr size_t kLeavesPerTree = 1024;  // so a proof is at most 10 steps

std::string leaf_hash(std::string_view payload) {
  std::string m(1, '\x00');
  m.append(payload);
  return sha256(m);
}

std::string node_hash(std::string_view left, std::string_view right) {
  std::string m(1, '\x01');
  m.append(left);
  m.append(right);
  return sha256(m);
}

// Signs leases [from, to) as one tree.
void sign_tree(const std::vector<Lease>& leases, size_t from, size_t to, std::string_view secret,
               std::vector<std::string>& out) {
  const size_t n = to - from;
  std::vector<std::string> payloads(n), proofs(n), level(n);
  std::vector<size_t> pos(n);
  for (size_t i = 0; i < n; ++i) {
    const Lease& l = leases[from + i];
    Value::Map m{{field::kComputer, Value(l.computer)},
                 {field::kLicense, Value(l.license)},
                 {field::kSerial, Value(l.serial)},
                 {field::kIssued, Value(l.issued)},
                 {field::kExpires, Value(l.expires)}};
    if (!l.kid.empty()) m.emplace_back(field::kKid, Value(l.kid));
    payloads[i] = pack(Value(std::move(m)));
    level[i] = leaf_hash(payloads[i]);
    pos[i] = i;
  }
  while (level.size() > 1) {
    for (size_t i = 0; i < n; ++i) {
      const size_t j = pos[i];
      if ((j ^ 1) < level.size()) {
        proofs[i].push_back((j & 1) ? '\x00' : '\x01');
        proofs[i].append(level[j ^ 1]);
      }
      pos[i] = j / 2;
    }
    std::vector<std::string> up;
    up.reserve(level.size() / 2 + 1);
    for (size_t j = 0; j + 1 < level.size(); j += 2) up.push_back(node_hash(level[j], level[j + 1]));
    if (level.size() % 2) up.push_back(std::move(level.back()));
    level = std::move(up);
  }
  const std::string sig = base64url_encode(sign_detached(std::string(kLeaseRoot) + level[0], secret));
  for (size_t i = 0; i < n; ++i)
    out.push_back(base64url_encode(payloads[i]) + "." + sig + "." + base64url_encode(proofs[i]));
}

// A batch token: payload "." signature "." proof, all base64url.
Result<Value> open_batch_token(std::string_view token, std::string_view public_key) {
  if (token.size() > 4096) return Error{Code::BadRequest, "token too long"};
  const auto dot1 = token.find('.');
  const auto dot2 = token.find('.', dot1 + 1);
  auto payload = base64url_decode(token.substr(0, dot1));
  auto sig = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto proof = base64url_decode(token.substr(dot2 + 1));
  if (!payload || !sig || !proof) return Error{Code::BadRequest, "token is not base64url"};
  if (proof->size() % kProofStep != 0 || proof->size() / kProofStep > kMaxProofSteps)
    return Error{Code::BadRequest, "malformed proof"};
  std::string h = leaf_hash(*payload);
  for (size_t at = 0; at < proof->size(); at += kProofStep) {
    const char side = (*proof)[at];
    const std::string_view sibling = std::string_view(*proof).substr(at + 1, kProofStep - 1);
    if (side == '\x00')
      h = node_hash(sibling, h);
    else if (side == '\x01')
      h = node_hash(h, sibling);
    else
      return Error{Code::BadRequest, "malformed proof"};
  }
  if (!sign_verify(std::string(kLeaseRoot) + h, *sig, public_key)) return Error{Code::BadRequest, "bad signature"};
  return signed_payload_map(*payload);
}

}  // namespace

std::vector<std::string> make_leases(const std::vector<Lease>& leases, std::string_view server_secret) {
  std::vector<std::string> out;
  out.reserve(leases.size());
  for (size_t from = 0; from < leases.size(); from += kLeavesPerTree)
    sign_tree(leases, from, std::min(leases.size(), from + kLeavesPerTree), server_secret, out);
  return out;
}

std::string make_lease(const Lease& l, std::string_view server_secret) {
  return std::move(make_leases({l}, server_secret)[0]);
}

Result<Lease> verify_lease(std::string_view token, std::string_view lease_key, int64_t now, int64_t tolerance_s) {
  const bool batch = std::count(token.begin(), token.end(), '.') == 2;
  auto opened = batch ? open_batch_token(token, lease_key) : open_token(token, lease_key);
  if (!opened) return Error{Code::Unauthorized, "lease rejected: " + opened.error().message};
  const Value& m = *opened;
  const std::string* computer = str_field(m, field::kComputer);
  const std::string* license = str_field(m, field::kLicense);
  const std::string* serial = str_field(m, field::kSerial);
  const std::string* kid = str_field(m, field::kKid);
  auto issued = int_field(m, field::kIssued);
  auto expires = int_field(m, field::kExpires);
  if (!computer || !license || !serial || !issued || !expires)
    return Error{Code::Unauthorized, "lease rejected: missing fields"};
  if (now >= *expires + std::max<int64_t>(tolerance_s, 0)) return Error{Code::Unauthorized, "lease expired"};
  return Lease{*computer, *license, *serial, *issued, *expires, kid ? *kid : std::string()};
}

Result<Lease> verify_lease(std::string_view token, const std::vector<std::string>& lease_keys, int64_t now,
                           int64_t tolerance_s) {
  // The kid is read before the signature is checked only to pick the key:
  // a changed kid picks a key that does not verify.
  std::string kid;
  if (auto payload = base64url_decode(token.substr(0, token.find('.')))) {
    if (auto m = signed_payload_map(*payload)) {
      if (const std::string* k = str_field(*m, field::kKid)) kid = *k;
    }
  }
  if (lease_keys.empty()) return Error{Code::Unauthorized, "lease rejected: no lease key to verify it with"};
  Result<Lease> last = Error{Code::Unauthorized, "lease rejected: signed by key " + kid + ", not in the key set"};
  for (const std::string& key : lease_keys) {
    if (!kid.empty() && lease_key_id(key) != kid) continue;
    last = verify_lease(token, key, now, tolerance_s);
    if (last || last.error().message == "lease expired") return last;
  }
  return last;
}

std::string lease_key_id(std::string_view public_key) { return base64url_encode(sha256(public_key).substr(0, 6)); }

const LeaseKey* LeaseKeySet::signer(int64_t now) const {
  const LeaseKey* best = nullptr;
  for (const LeaseKey& k : keys)
    if (k.published(now) && k.sign_from <= now && (!best || k.sign_from >= best->sign_from)) best = &k;
  return best;
}

std::vector<std::string> LeaseKeySet::published(int64_t now) const {
  std::vector<std::string> out;
  const LeaseKey* first = signer(now);
  if (first) out.push_back(first->public_key());
  for (const LeaseKey& k : keys)
    if (&k != first && k.published(now)) out.push_back(k.public_key());
  return out;
}

Result<LeaseKeySet> read_lease_keys(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return Error{Code::NotFound, "cannot read key file " + path + ": " + std::strerror(errno)};
  if (st.st_mode & 077)
    return Error{Code::Unauthorized, "secret key file " + path + " is readable by group or others (chmod 600 it)"};
  auto text = read_file(path);
  if (!text) return Error{Code::NotFound, "cannot read key file " + path};
  LeaseKeySet set;
  std::istringstream lines(*text);
  int number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    std::istringstream words(line);
    std::string word;
    if (!(words >> word)) continue;  // blank line
    const std::string where = "key file " + path + " line " + std::to_string(number);
    auto raw = base64url_decode(word);
    if (!raw || raw->size() != 64) return Error{Code::BadRequest, where + " does not hold a 64-byte base64url key"};
    LeaseKey key;
    key.secret = std::move(*raw);
    while (words >> word) {
      const auto eq = word.find('=');
      const std::string name = word.substr(0, eq == std::string::npos ? word.size() : eq);
      char* end = nullptr;
      const char* digits = eq == std::string::npos ? "" : word.c_str() + eq + 1;
      const long long value = std::strtoll(digits, &end, 10);
      if (*digits == '\0' || *end != '\0' || value < 0 || (name != "sign_from" && name != "retire_at"))
        return Error{Code::BadRequest, where + ": '" + word + "' is not sign_from=UNIX_S or retire_at=UNIX_S"};
      (name == "sign_from" ? key.sign_from : key.retire_at) = value;
    }
    set.keys.push_back(std::move(key));
  }
  if (set.keys.empty()) return Error{Code::BadRequest, "key file " + path + " holds no key"};
  return set;
}

std::string lease_keys_text(const LeaseKeySet& set) {
  std::string out;
  for (const LeaseKey& k : set.keys) {
    out += base64url_encode(k.secret);
    if (k.sign_from) out += " sign_from=" + std::to_string(k.sign_from);
    if (k.retire_at) out += " retire_at=" + std::to_string(k.retire_at);
    out += "\n";
  }
  return out;
}

Result<LeaseKeySet> rotate_lease_keys(const LeaseKeySet& set, int64_t now, int64_t overlap_s) {
  if (overlap_s < 1) return Error{Code::BadRequest, "the overlap must be at least 1 s"};
  LeaseKeySet out;
  for (const LeaseKey& k : set.keys) {
    if (!k.published(now)) continue;
    if (k.sign_from > now)
      return Error{Code::BadRequest, "a rotation is still publishing its key: it signs from " +
                                       std::to_string(k.sign_from) + " (Unix s); rotate again after that"};
    LeaseKey kept = k;
    if (kept.retire_at == 0 || kept.retire_at > now + 2 * overlap_s) kept.retire_at = now + 2 * overlap_s;
    out.keys.push_back(std::move(kept));
  }
  const SignKeypair kp = sign_keypair();
  out.keys.push_back(LeaseKey{kp.secret_key, now + overlap_s, 0});
  return out;
}

}  // namespace primary
