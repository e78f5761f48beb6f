// Leases as a Client or a Data Vault checks them, offline: the server signs
// {computer, license, serial, issued, expires} with its lease key and anyone
// holding the public half (`lease_key` in the setup info) can verify it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "primary/client/expected.hpp"

namespace primary::client {

struct LeaseInfo {
  std::string computer;  // upper-case, as the server stores names
  std::string license;
  std::string serial;
  int64_t issued = 0;   // Unix seconds
  int64_t expires = 0;  // Unix seconds; the lease is valid while now < expires
  std::string token;    // the signed text itself: what an upload presents to the Data Vault
};

// How far the verifier's clock may be off the server's (kLeaseToleranceS
// in common/tokens.hpp): a lease is accepted until expires + tolerance.
inline constexpr int64_t kLeaseToleranceS = 300;

// Verifies signature, shape and expiry at `now` (Unix seconds, the
// verifier's clock): valid while now < expires + tolerance_s. `lease_key`
// is the server's public lease key, either as the setup info carries it
// (base64url text) or as its 32 raw bytes, or a key set: base64url keys
// separated by commas (`lease_keys` of the setup info, joined), of which
// the one the lease names by its key id verifies it. On failure, the
// reason it is refused ("lease expired", "lease rejected: bad signature", ...).
//
// A Data Vault calls it with its own clock and the default tolerance, so a
// drift of its clock up to 5 minutes neither refuses a Client's good lease
// nor takes an expired one for longer; one whose clock may drift further
// should keep it synchronised (NTP) rather than raise the tolerance, since
// the tolerance is also how long an expired lease still passes.
Expected<LeaseInfo> verify_lease(std::string_view token, std::string_view lease_key, int64_t now,
                                 int64_t tolerance_s = kLeaseToleranceS);

}  // namespace primary::client
