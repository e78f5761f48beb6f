// Console sessions and the login throttle, in memory (a restart of
// primary-web logs everyone out). Time is passed in, so both are plain
// state machines.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace primary::web {

using Clock = std::chrono::steady_clock;

struct Session {
  std::string id;    // the cookie value: 32 random bytes, base64url
  std::string csrf;  // the form token of this session: 32 random bytes, base64url
  Clock::time_point created, last_used;
  std::string password_hash;  // the hash in force at login: a new password ends the session
  std::string flash;  // one-shot message for the next page
  bool flash_error = false;
};

class SessionStore {
 public:
  SessionStore(std::chrono::seconds idle, std::chrono::seconds max_age)
      : idle_(idle), max_age_(max_age) {}

  Session create(Clock::time_point now, std::string password_hash);
  // The live session with this id (touching it), or nullopt when unknown or
  // expired (an expired one is forgotten).
  std::optional<Session> find(const std::string& id, Clock::time_point now);
  void destroy(const std::string& id);
  void set_flash(const std::string& id, std::string message, bool error);
  // Returns and clears the flash message.
  std::pair<std::string, bool> take_flash(const std::string& id);

 private:
  std::mutex mu_;
  std::map<std::string, Session> sessions_;
  std::chrono::seconds idle_, max_age_;
};

// Failed logins per client address: kFreeFailures in a row are allowed;
// each failure after that locks the address out for 1 s, doubling up to
// 15 minutes. A success clears the address.
class LoginThrottle {
 public:
  static constexpr int kFreeFailures = 5;
  static constexpr std::chrono::seconds kMaxLock{15 * 60};

  // Seconds to wait before another attempt is allowed; 0: go ahead.
  int64_t retry_after(const std::string& address, Clock::time_point now);
  void failure(const std::string& address, Clock::time_point now);
  void success(const std::string& address);

 private:
  struct Record {
    int failures = 0;
    Clock::time_point locked_until{}, last_failure{};
  };
  std::mutex mu_;
  std::map<std::string, Record> records_;
};

// Equal strings, in time independent of where they differ.
bool same_secret(const std::string& a, const std::string& b);

}  // namespace primary::web
