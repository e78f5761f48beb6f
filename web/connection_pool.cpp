#include "web/connection_pool.hpp"

#include <spdlog/spdlog.h>

namespace primary::web {

ConnectionActivity::Clock::duration ConnectionActivity::idle_for() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_ > 0 ? Clock::duration::zero() : Clock::now() - idle_since_;
}

void ConnectionActivity::begin() {
  std::lock_guard<std::mutex> lock(mu_);
  ++open_;
}

void ConnectionActivity::end() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--open_ == 0) idle_since_ = Clock::now();
}

ConnectionPool::ConnectionPool(size_t max_threads, ConnectionActivity& activity)
    : max_threads_(max_threads), activity_(activity) {}

ConnectionPool::~ConnectionPool() { shutdown(); }

void ConnectionPool::enqueue(std::function<void()> fn) {
  activity_.begin();
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(fn));
    // A new thread only when every waiting one already has a job to take.
    if (jobs_.size() > waiting_ && threads_.size() < max_threads_) {
      try {
        threads_.emplace_back([this] { work(); });
      } catch (const std::system_error& e) {
        // The connection waits for a busy thread instead.
        spdlog::warn("cannot start a console thread ({}); {} running", e.what(), threads_.size());
      }
    }
  }
  cv_.notify_one();
}

void ConnectionPool::shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

void ConnectionPool::work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ++waiting_;
    cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    --waiting_;
    if (jobs_.empty()) return;  // stopping, nothing left to run
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    try {
      job();
    } catch (const std::exception& e) {
      spdlog::error("console connection failed: {}", e.what());
    }
    activity_.end();
    lock.lock();
  }
}

}  // namespace primary::web
