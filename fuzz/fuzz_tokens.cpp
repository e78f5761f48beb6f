// Signed artefacts: unlock codes, leases (the server's and the client
// library's verifier) and registration codes. The first byte picks the mode:
// even, the rest is token text as a peer would send it; odd, the rest is a
// payload that this target signs itself, so the shape checks behind the
// signature are reached too.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/crypto.hpp"
#include "common/tokens.hpp"
#include "primary/client/lease.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace primary;
  static const SignKeypair keys = [] {
    crypto_init();
    return sign_keypair();
  }();
  static const std::string key_text = base64url_encode(keys.public_key);
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string token;
  if (data[0] & 1)
    token = base64url_encode(rest) + "." + base64url_encode(sign_detached(rest, keys.secret_key));
  else
    token = std::string(rest);
  (void)parse_unlock_code(token, keys.public_key);
  (void)verify_lease(token, keys.public_key, 1700000000);
  (void)client::verify_lease(token, key_text, 1700000000);
  (void)client::verify_lease(token, keys.public_key, 1700000000);
  if (auto serial = registration_serial(rest); serial && !valid_serial(*serial)) __builtin_trap();
  (void)base64url_decode(rest);
  return 0;
}
