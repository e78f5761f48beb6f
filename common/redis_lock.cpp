#include "common/redis_lock.hpp"

#include <utility>

#include "common/lua_scripts.hpp"
#include "common/redis_failure.hpp"

namespace primary {
namespace {

const Script& hold_script() { return embedded_script<lua::kLockHold>(); }
const Script& renew_script() { return embedded_script<lua::kLockRenew>(); }
const Script& release_script() { return embedded_script<lua::kLockRelease>(); }

// A script's 0/1/2 answer, or the error it stands for.
Result<int64_t> integer_of(const Result<RedisReply>& r) {
  if (!r) return r.error();
  if (!r->is_int()) return reply_error(*r);
  return r->integer;
}

}  // namespace

ExpiringLock::ExpiringLock(Redis& redis, std::string key, std::string token, int64_t ttl_ms)
    : redis_(&redis), key_(std::move(key)), token_(std::move(token)), ttl_ms_(ttl_ms) {}

Result<bool> ExpiringLock::take() {
  auto r = redis_->command({"SET", key_, token_, "NX", "PX", std::to_string(ttl_ms_)});
  if (!r) return r.error();
  if (r->is_status("OK")) return true;
  if (r->is_nil()) return false;
  return reply_error(*r);
}

Result<ExpiringLock::Hold> ExpiringLock::hold() {
  auto n = integer_of(redis_->eval(hold_script(), {key_}, {token_, std::to_string(ttl_ms_)}));
  if (!n) return n.error();
  return *n == 1 ? Hold::Renewed : *n == 2 ? Hold::Taken : Hold::Refused;
}

Result<bool> ExpiringLock::renew() {
  auto n = integer_of(redis_->eval(renew_script(), {key_}, {token_, std::to_string(ttl_ms_)}));
  if (!n) return n.error();
  return *n == 1;
}

Result<bool> ExpiringLock::release() {
  auto n = integer_of(redis_->eval(release_script(), {key_}, {token_}));
  if (!n) return n.error();
  return *n == 1;
}

}  // namespace primary
