#include "licensed/lease_cache.hpp"

#include <malloc.h>

#include "common/crypto.hpp"
#include "common/names.hpp"

namespace primary {

LeaseCache::LeaseCache(LeaseKeySet keys, int64_t validity_s, int64_t quantum_s)
    : keys_(std::move(keys)), validity_s_(validity_s), quantum_s_(quantum_s) {}

void LeaseCache::set_keys(LeaseKeySet keys) {
  keys_ = std::move(keys);
  decltype(leases_)().swap(leases_);
  cache_kid_.clear();
}

const LeaseKey* LeaseCache::signer(int64_t now_s, std::string& kid) const {
  const LeaseKey* key = keys_.signer(now_s);
  kid = key ? lease_key_id(key->public_key()) : std::string();
  return key;
}

Lease LeaseCache::new_lease(const Wanted& w, int64_t issued, std::string_view kid) const {
  return Lease{std::string(w.computer), std::string(w.license), std::string(w.serial), issued,
               issued + validity_s_, std::string(kid)};
}

std::vector<LeaseCache::Cached> LeaseCache::sign_ahead(const std::vector<Wanted>& guesses, size_t replies,
                                                       int64_t now_s) {
  const int64_t issued = issued_at(now_s);
  std::string kid;
  const LeaseKey* key = signer(now_s, kid);
  std::vector<Cached> ahead;
  if (!key) return ahead;
  std::vector<Lease> to_sign;
  std::vector<size_t> at;
  for (const auto& g : guesses) {
    if (auto it = leases_.find(g.computer); it != leases_.end() && it->second.serves(g, issued, kid)) continue;
    to_sign.push_back(new_lease(g, issued, kid));
    at.push_back(g.reply);
  }
  if (to_sign.empty()) return ahead;
  auto tokens = make_leases(to_sign, key->secret);
  count_("leases_signed_ahead", static_cast<int64_t>(tokens.size()));
  ahead.resize(replies);
  for (size_t i = 0; i < tokens.size(); ++i) {
    Lease& l = to_sign[i];
    ahead[at[i]] = Cached{std::move(l.license), std::move(l.serial), std::move(tokens[i]), kid, l.issued, l.expires};
  }
  return ahead;
}

void LeaseCache::add_leases(const std::vector<Wanted>& wanted, std::vector<Reply>& replies, int64_t now_s,
                            std::vector<Cached>& ahead) {
  const int64_t issued = issued_at(now_s);
  std::string kid;
  const LeaseKey* key = signer(now_s, kid);
  if (!key) return;  // no key signs now (a hand-edited key file): licensed, without a lease
  // Only leases of the current quantum and signer can be handed out again,
  // so the cache holds just those. A fresh map gives the old one's memory back.
  if (issued != cache_quantum_ || kid != cache_kid_ || leases_.size() + wanted.size() > kMaxEntries) {
    const bool large = leases_.size() > 10000;
    decltype(leases_)().swap(leases_);
    if (large) ::malloc_trim(0);  // freed entries are scattered; hand back what can be
    cache_quantum_ = issued;
    cache_kid_ = kid;
  }
  std::vector<Lease> to_sign;
  std::vector<Cached*> signed_into;  // map nodes do not move
  std::vector<const Cached*> found;  // per wanted lease
  found.reserve(wanted.size());
  int64_t taken = 0;
  for (const auto& w : wanted) {
    auto it = leases_.find(w.computer);
    if (it == leases_.end()) it = leases_.emplace(std::string(w.computer), Cached{}).first;
    Cached& c = it->second;
    found.push_back(&c);
    if (c.serves(w, issued, kid)) continue;
    if (!ahead.empty() && ahead[w.reply].serves(w, issued, kid)) {
      c = std::move(ahead[w.reply]);
      ++taken;
      continue;
    }
    to_sign.push_back(new_lease(w, issued, kid));
    const Lease& l = to_sign.back();
    // Token "-": queued below; a repeat in this batch finds it.
    c = Cached{l.license, l.serial, "-", kid, l.issued, l.expires};
    signed_into.push_back(&c);
  }
  if (taken > 0) count_("leases_signed_ahead_used", taken);
  auto tokens = make_leases(to_sign, key->secret);
  for (size_t i = 0; i < tokens.size(); ++i) signed_into[i]->token = std::move(tokens[i]);
  // A server whose key was never rotated sends no key set: its Clients hold
  // the one key from their setup. After a rotation every licensed reply
  // carries it, so a Client that slept through a whole rotation still
  // learns the key that signs its next lease.
  const bool send_keys = keys_.keys.size() > 1 || key->sign_from > 0;
  Value::Array key_set;
  if (send_keys)
    for (const std::string& pub : keys_.published(now_s)) key_set.emplace_back(base64url_encode(pub));
  for (size_t i = 0; i < wanted.size(); ++i) {
    Value::Map& fields = replies[wanted[i].reply].fields.as_map();
    fields.emplace_back(field::kLease, Value(found[i]->token));
    fields.emplace_back(field::kLeaseExpires, Value(found[i]->expires));
    if (send_keys) fields.emplace_back(field::kLeaseKeys, Value(key_set));
  }
}

}  // namespace primary
