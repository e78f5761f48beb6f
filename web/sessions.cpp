#include "web/sessions.hpp"

#include <sodium.h>

#include "common/crypto.hpp"

namespace primary::web {

Session SessionStore::create(Clock::time_point now, std::string password_hash) {
  Session s;
  s.password_hash = std::move(password_hash);
  s.id = random_token(32);
  s.csrf = random_token(32);
  s.created = s.last_used = now;
  std::lock_guard<std::mutex> lock(mu_);
  // Forget expired sessions now and then, so the map stays bounded by use.
  for (auto it = sessions_.begin(); it != sessions_.end();)
    if (now - it->second.last_used > idle_ || now - it->second.created > max_age_)
      it = sessions_.erase(it);
    else
      ++it;
  sessions_[s.id] = s;
  return s;
}

std::optional<Session> SessionStore::find(const std::string& id, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  if (now - it->second.last_used > idle_ || now - it->second.created > max_age_) {
    sessions_.erase(it);
    return std::nullopt;
  }
  it->second.last_used = now;
  return it->second;
}

void SessionStore::destroy(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(id);
}

void SessionStore::set_flash(const std::string& id, std::string message, bool error) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = sessions_.find(id); it != sessions_.end()) {
    it->second.flash = std::move(message);
    it->second.flash_error = error;
  }
}

std::pair<std::string, bool> SessionStore::take_flash(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return {};
  std::pair<std::string, bool> out{std::move(it->second.flash), it->second.flash_error};
  it->second.flash.clear();
  return out;
}

int64_t LoginThrottle::retry_after(const std::string& address, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(address);
  if (it == records_.end() || it->second.locked_until <= now) return 0;
  return std::chrono::ceil<std::chrono::seconds>(it->second.locked_until - now).count();
}

void LoginThrottle::failure(const std::string& address, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  // Bounded memory: addresses quiet for an hour start over.
  if (records_.size() > 10000) {
    for (auto it = records_.begin(); it != records_.end();) {
      if (now - it->second.last_failure > std::chrono::hours(1) && it->second.locked_until <= now)
        it = records_.erase(it);
      else
        ++it;
    }
  }
  Record& r = records_[address];
  if (r.failures > 0 && now - r.last_failure > std::chrono::hours(1)) r.failures = 0;
  ++r.failures;
  r.last_failure = now;
  if (r.failures >= kFreeFailures) {
    const int doublings = std::min(r.failures - kFreeFailures, 20);
    const auto lock_for = std::min<std::chrono::seconds>(std::chrono::seconds(int64_t{1} << doublings), kMaxLock);
    r.locked_until = now + lock_for;
  }
}

void LoginThrottle::success(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  records_.erase(address);
}

bool same_secret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && !a.empty() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace primary::web
