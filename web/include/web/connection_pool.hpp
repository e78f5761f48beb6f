// cpp-httplib runs each accepted connection (keep-alive requests and live
// event streams included) as one task of its TaskQueue. This queue starts
// its threads as connections need them, up to a maximum, instead of all of
// them at start, and tells how long no connection has been open: primary-web
// exits after --idle-exit-s of that (primary-server starts it again at the
// next connection).
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace primary::web {

// Outlives the pools that report to it (httplib makes and deletes them).
class ConnectionActivity {
 public:
  using Clock = std::chrono::steady_clock;
  // How long no connection has been open or waiting; zero while one is.
  Clock::duration idle_for() const;
  void begin();
  void end();

 private:
  mutable std::mutex mu_;
  size_t open_ = 0;
  Clock::time_point idle_since_ = Clock::now();
};

class ConnectionPool : public httplib::TaskQueue {
 public:
  ConnectionPool(size_t max_threads, ConnectionActivity& activity);
  ~ConnectionPool() override;
  void enqueue(std::function<void()> fn) override;
  // Runs what is queued, then joins every thread.
  void shutdown() override;

 private:
  void work();

  const size_t max_threads_;
  ConnectionActivity& activity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t waiting_ = 0;  // threads waiting for a job
  bool stopping_ = false;
};

}  // namespace primary::web
