#include "common/events.hpp"

#include "common/codec.hpp"
#include "common/mdp.hpp"
#include "common/names.hpp"

namespace primary {

std::optional<Value> event_from_entry(const RedisReply& e) {
  if (!e.is_array() || (e.elements.size() != 4 && e.elements.size() != 6)) return std::nullopt;
  const auto& id = e.elements[0];
  const auto& type = e.elements[1];
  const auto& ts = e.elements[2];
  const auto& data = e.elements[3];
  if (!id.is_str() || !type.is_str() || !data.is_str()) return std::nullopt;
  Value event = Value(Value::Map{});
  event.set(field::kId, Value(id.str));
  int64_t ms = ts.is_int() ? ts.integer : (ts.is_str() ? std::atoll(ts.str.c_str()) : 0);
  event.set(field::kTs, Value(ms));
  event.set(field::kType, Value(type.str));
  if (auto fields = unpack_value(data.str); fields && fields->is_map())
    for (auto& [k, v] : fields->as_map())
      if (k != field::kId && k != field::kTs && k != field::kType) event.set(k, v);
  if (e.elements.size() == 6) {  // the chain fields (common/lua/events.lua)
    const auto& seq = e.elements[4];
    event.set(field::kSeq, Value(seq.is_int() ? seq.integer : (seq.is_str() ? std::atoll(seq.str.c_str()) : 0)));
    if (e.elements[5].is_str()) event.set(field::kPrev, Value(e.elements[5].str));
  }
  return event;
}

EventPublisher::EventPublisher(zmq::context_t& ctx, const std::vector<std::string>& endpoints)
    : socket_(ctx, zmq::socket_type::pub) {
  socket_.set(zmq::sockopt::linger, 500);
  for (const auto& ep : endpoints) {
    socket_.connect(ep);
    connected_ = true;
  }
}

void EventPublisher::publish_entries(const RedisReply& entries) {
  if (!entries.is_array()) return;
  for (const auto& e : entries.elements)
    if (auto ev = event_from_entry(e)) publish(*ev);
}

void EventPublisher::publish(const Value& event) {
  if (!connected_) return;
  const Value* type = event.find(field::kType);
  mdp::Frames out;
  out.push_back(mdp::frame(type && type->is_str() ? type->as_str() : std::string("event")));
  out.push_back(mdp::frame(pack(event)));
  mdp::send_frames(socket_, out, true);
}

}  // namespace primary
