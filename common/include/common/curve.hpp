// CURVE keys (ZeroMQ RFC 26) as the product keeps them: Z85 text files, one
// key a line; secrets readable by their owner only.
#pragma once

#include <optional>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "common/errors.hpp"

namespace primary {

struct CurveKeypair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

CurveKeypair curve_keypair();
// The public key of a Z85 secret key; empty if it is not one.
std::string curve_public_of(const std::string& secret_z85);
bool valid_z85_key(const std::string& text);
// Z85 (ZeroMQ RFC 32): 4 bytes to 5 characters. Encoding needs a multiple of
// 4 bytes (else empty); decoding a multiple of 5 valid characters.
std::string z85_encode(std::string_view raw);
std::optional<std::string> z85_decode(std::string_view text);

// Writes BASE.key (secret, 0600) and BASE.pub (0644); refuses to overwrite.
Status write_curve_keypair(const std::string& base, const CurveKeypair& kp);
// Reads a Z85 secret key file; refused when readable by group or others.
Result<std::string> read_curve_secret(const std::string& path);
// Reads a Z85 public key file.
Result<std::string> read_curve_public(const std::string& path);
// Creates BASE.key/BASE.pub when missing; returns the keypair.
Result<CurveKeypair> ensure_curve_keypair(const std::string& base);

// Reads an allow-list: Z85 public keys, one a line; `#` at the start of a
// line or after a blank starts a comment (Z85 keys may contain '#');
// blank lines ignored. A malformed line is an error naming its number.
// Each key maps to its name: the first word of its line's comment when
// that is a key name (1 to 64 of A-Z a-z 0-9 - _ ., as `primaryctl keys
// create --name` writes it), else the key's fingerprint.
Result<std::map<std::string, std::string>> read_allow_list(const std::string& path);
// "key:" and the first 8 hex digits of SHA-256 of the Z85 key text: how an
// unnamed admin key is named in the activity log.
std::string key_fingerprint(std::string_view z85_key);
// A name an admin key may carry (see read_allow_list).
bool valid_key_name(std::string_view name);

}  // namespace primary
