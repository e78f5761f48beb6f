// Thin wrappers over libsodium: randomness, hashes, Ed25519, base64url.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace primary {

// Initialises libsodium once; aborts if it cannot (no entropy source).
void crypto_init();

std::string random_bytes(size_t n);
// Unguessable token: n random bytes rendered as base64url.
std::string random_token(size_t n);

std::string base64url_encode(std::string_view raw);
std::optional<std::string> base64url_decode(std::string_view text);
std::string hex_encode(std::string_view raw);

std::string sha256(std::string_view data);  // 32 raw bytes
// SHA-256 of a file's contents, streamed: 64 lowercase hex digits, or nullopt if unreadable.
std::optional<std::string> sha256_file_hex(const std::string& path);
// SHA-1 as 40 lowercase hex digits (FIPS 180-4): only to name Lua scripts the
// way Redis does (EVALSHA); never for security.
std::string sha1_hex(std::string_view data);

struct SignKeypair {
  std::string public_key;  // 32 bytes
  std::string secret_key;  // 64 bytes (libsodium form: seed + public)
};
SignKeypair sign_keypair();
std::string sign_detached(std::string_view message, std::string_view secret_key);  // 64 bytes
bool sign_verify(std::string_view message, std::string_view signature, std::string_view public_key);

}  // namespace primary
