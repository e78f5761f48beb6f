#include "primary/client/lease.hpp"

#include "common/crypto.hpp"
#include "common/tokens.hpp"

static_assert(primary::client::kLeaseToleranceS == primary::kLeaseToleranceS);

namespace primary::client {

Expected<LeaseInfo> verify_lease(std::string_view token, std::string_view lease_key, int64_t now,
                                 int64_t tolerance_s) {
  std::string key(lease_key);
  if (key.size() != 32) {
    auto raw = base64url_decode(lease_key);
    if (!raw || raw->size() != 32)
      return Failure{"lease key is not 32 bytes (raw) or their base64url text"};
    key = std::move(*raw);
  }
  auto lease = ::primary::verify_lease(token, key, now, tolerance_s);
  if (!lease) return Failure{lease.error().message};
  return LeaseInfo{lease->computer, lease->license, lease->serial, lease->issued, lease->expires,
                   std::string(token)};
}

}  // namespace primary::client
