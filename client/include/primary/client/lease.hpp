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

// Verifies signature, shape and expiry at `now` (Unix seconds). `lease_key`
// is the server's public lease key, either as the setup info carries it
// (base64url text) or as its 32 raw bytes. On failure, the reason it is
// refused ("lease expired", "lease rejected: bad signature", ...).
Expected<LeaseInfo> verify_lease(std::string_view token, std::string_view lease_key, int64_t now);

}  // namespace primary::client
