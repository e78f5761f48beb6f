#include "licensed/lease_cache.hpp"

#include <malloc.h>

#include "common/names.hpp"

namespace primary {

LeaseCache::LeaseCache(std::string secret, int64_t validity_s, int64_t quantum_s)
    : secret_(std::move(secret)), validity_s_(validity_s), quantum_s_(quantum_s) {}

Lease LeaseCache::new_lease(const Wanted& w, int64_t issued) const {
  return Lease{std::string(w.computer), std::string(w.license), std::string(w.serial), issued,
               issued + validity_s_};
}

std::vector<LeaseCache::Cached> LeaseCache::sign_ahead(const std::vector<Wanted>& guesses, size_t replies,
                                                       int64_t now_s) {
  const int64_t issued = issued_at(now_s);
  std::vector<Lease> to_sign;
  std::vector<size_t> at;
  for (const auto& g : guesses) {
    if (auto it = leases_.find(g.computer); it != leases_.end() && it->second.serves(g, issued)) continue;
    to_sign.push_back(new_lease(g, issued));
    at.push_back(g.reply);
  }
  std::vector<Cached> ahead;
  if (to_sign.empty()) return ahead;
  auto tokens = make_leases(to_sign, secret_);
  count_("leases_signed_ahead", static_cast<int64_t>(tokens.size()));
  ahead.resize(replies);
  for (size_t i = 0; i < tokens.size(); ++i) {
    Lease& l = to_sign[i];
    ahead[at[i]] = Cached{std::move(l.license), std::move(l.serial), std::move(tokens[i]), l.issued, l.expires};
  }
  return ahead;
}

void LeaseCache::add_leases(const std::vector<Wanted>& wanted, std::vector<Reply>& replies, int64_t now_s,
                            std::vector<Cached>& ahead) {
  const int64_t issued = issued_at(now_s);
  // Only leases of the current quantum can be handed out again, so the cache
  // holds just those. A fresh map gives the old one's memory back.
  if (issued != cache_quantum_ || leases_.size() + wanted.size() > kMaxEntries) {
    const bool large = leases_.size() > 10000;
    decltype(leases_)().swap(leases_);
    if (large) ::malloc_trim(0);  // freed entries are scattered; hand back what can be
    cache_quantum_ = issued;
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
    if (c.serves(w, issued)) continue;
    if (!ahead.empty() && ahead[w.reply].serves(w, issued)) {
      c = std::move(ahead[w.reply]);
      ++taken;
      continue;
    }
    to_sign.push_back(new_lease(w, issued));
    const Lease& l = to_sign.back();
    // Token "-": queued below; a repeat in this batch finds it.
    c = Cached{l.license, l.serial, "-", l.issued, l.expires};
    signed_into.push_back(&c);
  }
  if (taken > 0) count_("leases_signed_ahead_used", taken);
  auto tokens = make_leases(to_sign, secret_);
  for (size_t i = 0; i < tokens.size(); ++i) signed_into[i]->token = std::move(tokens[i]);
  for (size_t i = 0; i < wanted.size(); ++i) {
    Value::Map& fields = replies[wanted[i].reply].fields.as_map();
    fields.emplace_back(field::kLease, Value(found[i]->token));
    fields.emplace_back(field::kLeaseExpires, Value(found[i]->expires));
  }
}

}  // namespace primary
