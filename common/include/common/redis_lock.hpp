// A lock in Redis that expires: one string key holding its holder's token,
// with a time to live. A holder renews it before the TTL runs out or loses
// it; a holder that dies is replaced once its TTL has passed. Renewing and
// releasing act only while the key still holds this lock's token (a script
// compares and acts), so a holder whose lock expired and was taken by
// another can neither extend nor drop the other's.
//
// It is not a fencing token: a holder that stalls past the TTL may still
// believe it holds the lock while another has taken it. A write that must
// happen only under the lock checks the token in the same script (as
// admin/lua/log_file_commit.lua does).
//
// The scripts: common/lua/lock_hold.lua, lock_renew.lua, lock_release.lua.
#pragma once

#include <cstdint>
#include <string>

#include "common/errors.hpp"
#include "common/redis.hpp"

namespace primary {

class ExpiringLock {
 public:
  // Does not touch Redis. `token` must be unique to the holder; `redis`
  // must outlive the lock.
  ExpiringLock(Redis& redis, std::string key, std::string token, int64_t ttl_ms);

  // SET key token NX PX ttl: true when this call took the lock, false while
  // anyone holds it (this token too). An error when Redis gave no answer or
  // an error reply (reply_error()'s code).
  Result<bool> take();

  enum class Hold { Refused, Taken, Renewed };
  // Takes the lock if it is free, renews it if this token holds it; Refused
  // while another holds it. Errors as take().
  Result<Hold> hold();

  // Extends the TTL if this token still holds the lock: true, else false.
  Result<bool> renew();

  // Deletes the key if this token still holds it: true, else false.
  Result<bool> release();

  const std::string& key() const { return key_; }
  const std::string& token() const { return token_; }
  int64_t ttl_ms() const { return ttl_ms_; }

 private:
  Redis* redis_;
  std::string key_;
  std::string token_;
  int64_t ttl_ms_;
};

}  // namespace primary
