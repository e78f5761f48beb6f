// Signed artefacts: unlock codes, leases (the server's and the client
// library's verifier) and registration codes. The first byte picks the mode:
// even, the rest is token text as a peer would send it; odd, the rest is a
// payload that this target signs itself, so the shape checks behind the
// signature are reached too. With bit 2 set, the rest also names computers
// (one a line) whose leases are signed as one batch: each must verify as
// its own (a trap otherwise), and a path taken from the input is tried on
// the first one's payload and signature.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>
#include <algorithm>

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
  if (data[0] & 2) {
    std::vector<Lease> leases;
    for (size_t from = 0; from <= rest.size() && leases.size() < 40;) {
      const size_t nl = std::min(rest.find('\n', from), rest.size());
      std::string name(rest.substr(from, std::min<size_t>(nl - from, 64)));
      for (auto& ch : name) ch = static_cast<char>('A' + static_cast<unsigned char>(ch) % 26);
      leases.push_back(Lease{name, "L-1", "SN-1", 1699990000, 1700100000, {}});
      from = nl + 1;
    }
    const auto tokens = make_leases(leases, keys.secret_key);
    if (tokens.size() != leases.size()) __builtin_trap();
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto lease = verify_lease(tokens[i], keys.public_key, 1700000000);
      if (!lease || lease->computer != leases[i].computer) __builtin_trap();
    }
    const std::string& first = tokens[0];
    (void)verify_lease(first.substr(0, first.rfind('.') + 1) + base64url_encode(rest), keys.public_key,
                       1700000000);
  }
  if (auto serial = registration_serial(rest); serial && !valid_serial(*serial)) __builtin_trap();
  (void)base64url_decode(rest);
  return 0;
}
