// The leases one licensing worker hands out, signed and cached.
//
// Leases are issued on a time grid: every heartbeat within one quantum gets
// the same signed lease, so a busy server signs at most one lease per
// computer per quantum. A lease still proves the same thing: this computer
// held this license at `issued`, valid until check + grace later. The cache
// holds the current quantum's leases only (at most kMaxEntries, about 600
// bytes each), since no other can be handed out again; a Client comes back
// once per check interval, so only retries and the per-minute unlicensed
// heartbeats find theirs here. Leases not cached are signed a batch at a
// time under one Ed25519 signature (make_leases).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/schema.hpp"
#include "common/tokens.hpp"

namespace primary {

class LeaseCache {
 public:
  static constexpr size_t kMaxEntries = 65536;

  // `keys`: the server's lease keys (the signer at each moment signs); a
  // lease is valid `validity_s` after its quantum of `quantum_s` starts.
  LeaseCache(LeaseKeySet keys, int64_t validity_s, int64_t quantum_s);
  // A new key set (the key file changed): cached leases go, since they may
  // name a key that no longer signs.
  void set_keys(LeaseKeySet keys);
  const LeaseKeySet& keys() const { return keys_; }

  // A licensed heartbeat's reply still waiting for its lease.
  // The views must outlive the add_leases() call.
  struct Wanted {
    size_t reply;  // index into the replies given to add_leases
    std::string_view computer, license, serial;
  };
  struct Cached {
    std::string license, serial, token, kid;
    int64_t issued = 0, expires = 0;
    // Whether this is the lease `w` wants in the quantum starting at `at`,
    // signed by the key `signer` names.
    bool serves(const Wanted& w, int64_t at, std::string_view signer) const {
      return issued == at && license == w.license && serial == w.serial && kid == signer && !token.empty();
    }
  };
  // Looks names up by view, without a copy.
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  // Adds `lease` and `lease_expires` (and, once the key has ever been
  // rotated, `lease_keys`: the published key set) to each wanted reply: the lease of this
  // quantum from the cache, and the ones not cached signed together, with
  // one signature. A computer gets at most one lease per quantum from this
  // worker. `ahead`, when not empty, holds leases signed before the answer
  // (sign_ahead), by reply index; one that is what a wanted reply needs is
  // taken (moved out) instead of signing it again.
  void add_leases(const std::vector<Wanted>& wanted, std::vector<Reply>& replies, int64_t now_s,
                  std::vector<Cached>& ahead);
  // Signs, while Redis runs a batch, the leases its heartbeats will want if
  // they are licensed as `guesses` say (the serial of the last answer, the
  // license each Client sent) and the cache has none of: the result by
  // reply index, for add_leases(); empty when there was nothing to sign.
  // A guess that turns out wrong costs a wasted hash-tree leaf; its lease
  // is never handed out.
  std::vector<Cached> sign_ahead(const std::vector<Wanted>& guesses, size_t replies, int64_t now_s);
  // The lease `w` wants, not signed yet, issued at `issued`, naming `kid`.
  Lease new_lease(const Wanted& w, int64_t issued, std::string_view kid) const;
  // The start of the lease quantum holding `now_s`: a lease's `issued`.
  int64_t issued_at(int64_t now_s) const { return now_s - now_s % quantum_s_; }

  // Where the counters go: leases_signed_ahead (sign_ahead()) and
  // leases_signed_ahead_used (of those, handed out); their ratio says how
  // well the guesses hold.
  void count_with(std::function<void(std::string_view, int64_t)> add) { count_ = std::move(add); }

 private:
  // The signer at `now_s` and its id; nullptr when no key signs.
  const LeaseKey* signer(int64_t now_s, std::string& kid) const;

  LeaseKeySet keys_;
  int64_t validity_s_;
  int64_t quantum_s_;
  // Of cache_quantum_ only.
  std::unordered_map<std::string, Cached, NameHash, std::equal_to<>> leases_;
  int64_t cache_quantum_ = 0;
  std::string cache_kid_;  // the signer of the cached leases
  std::function<void(std::string_view, int64_t)> count_ = [](std::string_view, int64_t) {};
};

}  // namespace primary
