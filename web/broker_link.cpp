#include "web/broker_link.hpp"

#include <spdlog/spdlog.h>

#include <charconv>
#include <optional>

#include "common/codec.hpp"
#include "common/curve.hpp"
#include "common/mdp.hpp"
#include "common/process.hpp"
#include "common/schema.hpp"

namespace primary::web {
namespace {

constexpr size_t kIdleClients = 8;

// "tcp://*:16770" -> "tcp://127.0.0.1:16770": where this host reaches it.
std::string local_endpoint(std::string ep) {
  for (std::string_view any : {"//*:", "//0.0.0.0:"})
    if (auto pos = ep.find(any); pos != std::string::npos) ep.replace(pos, any.size(), "//127.0.0.1:");
  return ep;
}

std::optional<std::pair<uint64_t, uint64_t>> parse_id(const std::string& id) {
  const auto dash = id.find('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == id.size() || dash > 20 ||
      id.size() - dash - 1 > 20)
    return std::nullopt;
  std::pair<uint64_t, uint64_t> out;
  auto [p1, e1] = std::from_chars(id.data(), id.data() + dash, out.first);
  auto [p2, e2] = std::from_chars(id.data() + dash + 1, id.data() + id.size(), out.second);
  if (e1 != std::errc() || p1 != id.data() + dash || e2 != std::errc() || p2 != id.data() + id.size())
    return std::nullopt;
  return out;
}

}  // namespace

bool valid_event_id(const std::string& id) { return parse_id(id).has_value(); }

bool event_id_less(const std::string& a, const std::string& b) {
  auto x = parse_id(a), y = parse_id(b);
  return x && y && *x < *y;
}

// ---------------------------------------------------------------- BrokerLink

BrokerLink::BrokerLink(zmq::context_t& ctx, LinkOptions options)
    : ctx_(ctx), options_(std::move(options)) {}

std::string BrokerLink::front() const {
  if (!options_.endpoints_file.empty())
    if (auto f = endpoints_file_value(options_.endpoints_file, "front")) return local_endpoint(*f);
  auto list = split_list(options_.front);
  return local_endpoint(list.empty() ? "tcp://127.0.0.1:16770" : list.front());
}

std::string BrokerLink::events() const {
  if (!options_.endpoints_file.empty())
    if (auto e = endpoints_file_value(options_.endpoints_file, "events")) return local_endpoint(*e);
  if (!options_.events.empty()) return local_endpoint(split_list(options_.events).front());
  // The same address as the front door, port + 1.
  std::string f = front();
  const auto colon = f.rfind(':');
  int port = 0;
  if (colon != std::string::npos) std::from_chars(f.data() + colon + 1, f.data() + f.size(), port);
  return port > 0 ? f.substr(0, colon + 1) + std::to_string(port + 1) : f;
}

std::unique_ptr<MdpClient> BrokerLink::take(const std::string& endpoint) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!idle_.empty()) {
      auto [ep, client] = std::move(idle_.back());
      idle_.pop_back();
      if (ep == endpoint) return std::move(client);
    }
  }
  ClientOptions o;
  o.endpoints = {endpoint};
  o.timeout_ms = options_.timeout_ms;
  o.attempts = 1;
  o.server_key = options_.server_public;
  if (!o.server_key.empty()) {
    o.secret_key = options_.secret_key;
    o.public_key = curve_public_of(options_.secret_key);
  }
  return std::make_unique<MdpClient>(ctx_, o);
}

void BrokerLink::give_back(std::unique_ptr<MdpClient> client, const std::string& endpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < kIdleClients) idle_.emplace_back(endpoint, std::move(client));
}

Result<std::string> BrokerLink::request(const std::string& service, const std::string& body) {
  const std::string endpoint = front();
  auto client = take(endpoint);
  auto reply = client->request(service, body);
  // A client that timed out has a fresh socket already, but a late reply
  // could only confuse: keep only clients whose last request was answered.
  if (reply) give_back(std::move(client), endpoint);
  return reply;
}

Result<Value> BrokerLink::call(const std::string& service, const std::string& op, Value::Map fields) {
  auto raw = request(service, encode_request(op, std::move(fields)));
  if (!raw) return raw.error();
  return unpack_map(*raw);
}

// ---------------------------------------------------------------- EventFeed

EventFeed::EventFeed(BrokerLink& link) : link_(link), thread_([this] { run(); }) {}

EventFeed::~EventFeed() {
  stop();
  if (thread_.joinable()) thread_.join();
}

void EventFeed::stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = true;
  cv_.notify_all();
}

uint64_t EventFeed::head() {
  std::lock_guard<std::mutex> lock(mu_);
  return next_seq_;
}

std::vector<EventFeed::Entry> EventFeed::wait(uint64_t from, std::chrono::milliseconds timeout,
                                              uint64_t* oldest) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return stop_ || next_seq_ > from; });
  *oldest = ring_.empty() ? next_seq_ : ring_.front().seq;
  std::vector<Entry> out;
  for (const auto& e : ring_)
    if (e.seq >= from) out.push_back(e);
  return out;
}

void EventFeed::run() {
  const LinkOptions& o = link_.options();
  std::unique_ptr<zmq::socket_t> sub;
  std::string connected;
  auto last_check = std::chrono::steady_clock::time_point{};
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    // Follow the broker if it came back on another endpoint.
    const auto now = std::chrono::steady_clock::now();
    if (!sub || now - last_check > std::chrono::seconds(1)) {
      last_check = now;
      const std::string ep = link_.events();
      if (!sub || ep != connected) {
        sub = std::make_unique<zmq::socket_t>(link_.context(), zmq::socket_type::sub);
        sub->set(zmq::sockopt::linger, 0);
        if (!o.server_public.empty()) {
          sub->set(zmq::sockopt::curve_serverkey, o.server_public);
          sub->set(zmq::sockopt::curve_publickey, curve_public_of(o.secret_key));
          sub->set(zmq::sockopt::curve_secretkey, o.secret_key);
        }
        sub->set(zmq::sockopt::subscribe, "");
        sub->connect(ep);
        connected = ep;
        spdlog::info("following events at {}", ep);
      }
    }
    zmq::pollitem_t item{sub->handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(250));
    if (!(item.revents & ZMQ_POLLIN)) continue;
    mdp::Frames in;
    mdp::recv_frames(*sub, in);
    if (in.size() != 2) continue;
    auto event = unpack_map(mdp::view(in[1]));
    if (!event) continue;
    const Value* id = event->find(field::kId);
    const Value* type = event->find(field::kType);
    if (!id || !id->is_str() || !valid_event_id(id->as_str())) continue;
    std::lock_guard<std::mutex> lock(mu_);
    ring_.push_back(Entry{next_seq_++, id->as_str(), type && type->is_str() ? type->as_str() : "",
                          std::move(*event)});
    while (ring_.size() > kCapacity) ring_.pop_front();
    cv_.notify_all();
  }
}

}  // namespace primary::web
