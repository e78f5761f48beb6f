// Signed artefacts of PROTOCOL.md section 5 and the key files behind them.
//
// A token is base64url(MessagePack payload) "." base64url(Ed25519 signature
// of the payload bytes). Unlock codes are signed by the vendor, leases by the
// server; both are verified offline with the signer's public key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.hpp"
#include "common/value.hpp"

namespace primary {

// Signs a map payload; returns the token text.
std::string sign_token(const Value& payload, std::string_view secret_key);
// Checks the signature and decodes the payload map; the error says why not.
Result<Value> open_token(std::string_view token, std::string_view public_key);

// ---- key files: one line of base64url text ----
// Writes a key file with the given mode (0600 for secrets), refusing to
// overwrite an existing file.
Status write_key_file(const std::string& path, std::string_view raw, unsigned mode);
// Reads a key of `size` raw bytes; a secret file readable by group or others
// is refused when `secret` is true.
Result<std::string> read_key_file(const std::string& path, size_t size, bool secret);
// Creates the server's lease signing key in `path` if missing; returns the secret key.
Result<std::string> ensure_signing_key(const std::string& path);

// ---- unlock codes (vendor-signed) ----
struct UnlockCode {
  std::string serial;
  int64_t licenses = 0;
  std::string registration;
  int64_t issued = 0;  // Unix ms
};
std::string make_unlock_code(const UnlockCode& code, std::string_view vendor_secret);
// Verifies the signature and shape; INVALID_UNLOCK_CODE with the reason.
Result<UnlockCode> parse_unlock_code(std::string_view text, std::string_view vendor_public);

// ---- seat codes (vendor-signed): retire or transfer one reservation ----
// Text: base64url(payload) "." base64url(signature), payload the MessagePack
// map {kind, registration, computer, license, to (transfer only), issued,
// expires, id}, the signature Ed25519 over kSeatCodeDomain followed by the
// payload bytes, so that no unlock code, lease or release signature can
// pass for a seat code (docs/protocol.md "Seat codes").
inline constexpr std::string_view kSeatCodeDomain = "primary-seat-code-v1\n";
struct SeatCode {
  std::string kind;          // seat::kRetire or seat::kTransfer
  std::string registration;  // the server's registration code
  std::string computer;      // the reserved name, upper case
  std::string license;       // the license the computer holds now
  std::string to;            // transfer: the new name, upper case; else empty
  int64_t issued = 0, expires = 0;  // Unix ms
  std::string id;            // unique: a code is applied at most once
};
std::string make_seat_code(const SeatCode& code, std::string_view vendor_secret);
// Verifies the signature and shape (not expiry, nor anything the server
// holds): INVALID_SEAT_CODE with the message, the `reason` being TAMPERED.
Result<SeatCode> parse_seat_code(std::string_view text, std::string_view vendor_public);

// ---- registration codes ----
// "PS1-<serial>-<24 hex>": the serial bound to this server's install id.
std::string registration_code(std::string_view serial, std::string_view install_id);
// The serial named in a registration code, if it is well formed.
std::optional<std::string> registration_serial(std::string_view code);
// Serial numbers: 1 to 64 of A-Z a-z 0-9 - _ .
bool valid_serial(std::string_view serial);

// ---- leases (server-signed) ----
struct Lease {
  std::string computer, license, serial;
  int64_t issued = 0, expires = 0;  // Unix seconds
  std::string kid;                  // the signing key's id; empty: none named (leases before key rotation)
};

// The id a lease names its signing key by: base64url of the first 6 bytes
// of SHA-256 of the 32-byte public key (8 characters).
std::string lease_key_id(std::string_view public_key);

// The server's lease keys (docs/protocol.md "Lease keys"): one file, one
// key a line, `SECRET [sign_from=UNIX_S] [retire_at=UNIX_S]`, SECRET the
// base64url of the 64-byte Ed25519 secret. A file of one bare line (every
// server before rotation) is one key that signs from the start and never
// retires. At time t a key is published (in setup_info and heartbeat
// replies) until its retire_at, and signs from its sign_from; the signer is
// the published key with the latest sign_from not after t.
struct LeaseKey {
  std::string secret;      // 64 bytes
  int64_t sign_from = 0;   // Unix seconds
  int64_t retire_at = 0;   // Unix seconds; 0: never
  std::string public_key() const { return secret.substr(32); }
  bool published(int64_t now) const { return retire_at == 0 || now < retire_at; }
};
struct LeaseKeySet {
  std::vector<LeaseKey> keys;
  // The key that signs at `now`; nullptr if none can (an empty set, or
  // every key retired or not signing yet).
  const LeaseKey* signer(int64_t now) const;
  // The public keys published at `now`, the signer's first.
  std::vector<std::string> published(int64_t now) const;
};
// Reads a key set file; a secret file readable by group or others, a line
// that does not parse, or a file without keys is refused with the reason.
Result<LeaseKeySet> read_lease_keys(const std::string& path);
// The file's text for a key set (what read_lease_keys reads back).
std::string lease_keys_text(const LeaseKeySet& set);
// Starts a rotation at `now`: a new key signs from now + overlap_s, every
// other key still published retires at now + 2 * overlap_s (when the last
// lease it signed has expired, if overlap_s is at least the leases'
// validity), and keys already retired leave the set. Refused (the reason)
// while a rotation is still publishing its key.
Result<LeaseKeySet> rotate_lease_keys(const LeaseKeySet& set, int64_t now, int64_t overlap_s);
// Signs a batch of leases with one signature (docs/protocol.md "Lease"):
// the payloads are the leaves of a hash tree, its root is what is signed,
// and each token carries its own path to the root. One Ed25519 signature
// (~22 us) then serves a whole batch of heartbeats, and a token still
// proves exactly its own payload. Returns one token per lease, in order.
std::vector<std::string> make_leases(const std::vector<Lease>& leases, std::string_view server_secret);
std::string make_lease(const Lease& lease, std::string_view server_secret);
// How far a verifier's own clock may be behind or ahead of the server's
// without refusing a good lease or taking an expired one for long: a
// lease is accepted until `expires + tolerance` by the verifier's clock.
inline constexpr int64_t kLeaseToleranceS = 300;
// What a Data Vault or Client calls: signature, shape and expiry at `now`
// (Unix seconds, the verifier's clock), for batch tokens and for the plain
// signed tokens of earlier versions alike: valid while now < expires +
// tolerance_s. A verifier that knows the server's time (the client
// library) passes 0. The error message is the reason it is refused.
Result<Lease> verify_lease(std::string_view token, std::string_view lease_key, int64_t now,
                           int64_t tolerance_s = kLeaseToleranceS);
// The same against a key set (32-byte public keys): the key the lease's
// `kid` names, or, for a lease naming none, any key of the set.
Result<Lease> verify_lease(std::string_view token, const std::vector<std::string>& lease_keys, int64_t now,
                           int64_t tolerance_s = kLeaseToleranceS);

}  // namespace primary
