// What a worker answers when Redis could not serve a request: one decision,
// the same in every worker, of the code on the wire (PROTOCOL.md section 3)
// and of the words.
//
//   Redis gave no answer (connection, AUTH, SELECT,    UNAVAILABLE  the <store> is unavailable; retry
//   timeout)
//   a replicated write not confirmed by enough         UNAVAILABLE  the <store> could not confirm the
//   replicas in time (replication_shortfall)                        write on a replica (<detail>); retry
//   an error reply that means "not now"                UNAVAILABLE  the <store> is not ready; retry
//   (transient_error: LOADING, NOREPLICAS, ...)
//   any other error reply (WRONGTYPE, a script's own   INTERNAL     internal error; see server log
//   error) or a reply of the wrong shape
//
// <store> names what the client is told is missing: "license store",
// "update store", "store". The detail goes to the log (warning for the
// UNAVAILABLE cases, error for INTERNAL), never to the client.
#pragma once

#include <string_view>

#include "common/errors.hpp"
#include "common/redis.hpp"
#include "common/schema.hpp"

namespace primary {

// An Error carrying the decision for a reply that is not the expected one:
// Unavailable for a transient error reply, Internal for anything else; the
// message holds Redis's words (for logs).
Error reply_error(const RedisReply& reply);

// The failure reply for a call that returned no answer (its Error), or an
// Error made by reply_error(): Internal stays INTERNAL, anything else is
// UNAVAILABLE.
Reply redis_failure(const Error& error, std::string_view store);

// The failure reply for an answer that is an error reply or of the wrong
// shape (the same as redis_failure(reply_error(reply), store)).
Reply redis_failure(const RedisReply& reply, std::string_view store);

}  // namespace primary
