#include "primary/client/lease.hpp"

#include <vector>

#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"

static_assert(primary::client::kLeaseToleranceS == primary::kLeaseToleranceS);

namespace primary::client {

Expected<LeaseInfo> verify_lease(std::string_view token, std::string_view lease_key, int64_t now,
                                 int64_t tolerance_s) {
  std::vector<std::string> keys;
  if (lease_key.size() == 32) {  // raw bytes (base64url text of a key is 43 characters)
    keys.emplace_back(lease_key);
  } else {
    for (const std::string& text : split_list(std::string(lease_key))) {
      auto raw = base64url_decode(text);
      if (!raw || raw->size() != 32)
        return Failure{"lease key is not 32 bytes (raw) or their base64url text (commas between keys of a set)"};
      keys.push_back(std::move(*raw));
    }
    if (keys.empty()) return Failure{"no lease key given"};
  }
  auto lease = ::primary::verify_lease(token, keys, now, tolerance_s);
  if (!lease) return Failure{lease.error().message};
  return LeaseInfo{lease->computer, lease->license, lease->serial, lease->issued, lease->expires,
                   std::string(token)};
}

}  // namespace primary::client
