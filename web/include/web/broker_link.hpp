// primary-web's way to the broker: it is one more admin client, like
// primaryctl. Requests go through a small pool of MdpClients (one request
// per client at a time, so HTTP threads never share a socket), and the
// event stream is read by one subscriber thread into a bounded ring that
// every Server-Sent Events connection reads from.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/client.hpp"
#include "common/errors.hpp"
#include "common/value.hpp"

namespace primary::web {

struct LinkOptions {
  std::string front;           // front door as configured ("tcp://*:16770" means this host)
  std::string events;          // event endpoint; empty: the front door's port + 1
  std::string endpoints_file;  // the broker's endpoints file: its front=/events= win, re-read
  std::string server_public;   // Z85 server key; empty: insecure (no CURVE)
  std::string secret_key;      // Z85 secret of an admin key (secure mode)
  int timeout_ms = 8000;       // above the broker's 5 s request deadline
};

class BrokerLink {
 public:
  BrokerLink(zmq::context_t& ctx, LinkOptions options);

  // One request {op, ...fields}; the reply map (ok or not), or UNAVAILABLE
  // when no reply came.
  Result<Value> call(const std::string& service, const std::string& op, Value::Map fields = {});
  // A raw body (MMI: "mmi.service" with a service name -> "200"/"404").
  Result<std::string> request(const std::string& service, const std::string& body);

  // Where the front door and the event stream are now.
  std::string front() const;
  std::string events() const;
  zmq::context_t& context() { return ctx_; }
  const LinkOptions& options() const { return options_; }

 private:
  std::unique_ptr<MdpClient> take(const std::string& endpoint);
  void give_back(std::unique_ptr<MdpClient> client, const std::string& endpoint);

  zmq::context_t& ctx_;
  LinkOptions options_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::unique_ptr<MdpClient>>> idle_;
};

// Events from the broker's event stream, kept in arrival order with a
// sequence number so that each reader can follow from where it was.
class EventFeed {
 public:
  struct Entry {
    uint64_t seq;
    std::string id;
    std::string type;
    Value event;
  };
  static constexpr size_t kCapacity = 2000;

  explicit EventFeed(BrokerLink& link);
  ~EventFeed();  // stops the subscriber thread
  EventFeed(const EventFeed&) = delete;
  EventFeed& operator=(const EventFeed&) = delete;

  // The sequence number the next event will get.
  uint64_t head();
  // Entries with seq >= from, waiting up to `timeout` for one to arrive.
  // `*oldest` is the smallest seq still held: above `from` means entries
  // were dropped (more than kCapacity behind).
  std::vector<Entry> wait(uint64_t from, std::chrono::milliseconds timeout, uint64_t* oldest);
  void stop();

 private:
  void run();

  BrokerLink& link_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> ring_;
  uint64_t next_seq_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

// Stream ids "<ms>-<seq>": valid, and compared as pairs of numbers.
bool valid_event_id(const std::string& id);
bool event_id_less(const std::string& a, const std::string& b);

}  // namespace primary::web
