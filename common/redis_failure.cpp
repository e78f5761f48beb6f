#include "common/redis_failure.hpp"

#include <spdlog/spdlog.h>

#include <string>

namespace primary {

Error reply_error(const RedisReply& reply) {
  if (transient_error(reply)) return Error{Code::Unavailable, reply.str};
  if (reply.is_error()) return Error{Code::Internal, reply.str};
  return Error{Code::Internal, "unexpected reply from Redis"};
}

Reply redis_failure(const Error& error, std::string_view store) {
  if (error.code == Code::Internal) {
    spdlog::error("redis: {}", error.message);
    return Reply::failure(Code::Internal, "internal error; see server log");
  }
  spdlog::warn("redis: {}", error.message);
  const std::string what = "the " + std::string(store);
  if (replication_shortfall(error))  // the write ran; retrying returns the same result
    return Reply::failure(Code::Unavailable, what + " could not confirm the write on a replica (" +
                                                 error.message.substr(error.message.find(' ') + 1) + "); retry");
  return Reply::failure(Code::Unavailable, what + " is unavailable; retry");
}

Reply redis_failure(const RedisReply& reply, std::string_view store) {
  if (transient_error(reply)) {
    spdlog::warn("redis not ready: {}", reply.str);
    return Reply::failure(Code::Unavailable, "the " + std::string(store) + " is not ready; retry");
  }
  return redis_failure(reply_error(reply), store);
}

}  // namespace primary
