// The activity log's append path without the publisher (common/events.hpp).
#include "common/codec.hpp"
#include "common/events.hpp"
#include "common/lua_scripts.hpp"

namespace primary {

std::optional<CountAndEvents> count_and_events(const RedisReply& r) {
  if (!r.is_array() || r.elements.size() != 2 || !r.elements[0].is_int() || !r.elements[1].is_array())
    return std::nullopt;
  return CountAndEvents{r.elements[0].integer, &r.elements[1]};
}

Result<Appended> append_event(Redis& redis, std::string_view type, const Value& fields, std::string_view who,
                              int64_t cap, int64_t now_ms) {
  static const Script& script = embedded_script<lua::kEmit>();
  auto r = redis.eval(script, {kEventStream},
                      {std::string(type), pack(fields), std::string(who), std::to_string(cap), std::to_string(now_ms)});
  if (!r) return r.error();
  const auto a = count_and_events(*r);
  if (!a || a->events->elements.empty() || !a->events->elements[0].is_array() ||
      a->events->elements[0].elements.empty() || !a->events->elements[0].elements[0].is_str())
    return Error{Code::Internal, r->is_error() ? r->str : "unexpected reply to the event script"};
  Appended out;
  out.id = a->events->elements[0].elements[0].str;
  out.entries = std::move(r->elements[1]);
  return out;
}

}  // namespace primary
