// Small helpers for tests: polling for a condition, reading a whole file.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace primary::test {

using namespace std::chrono_literals;

// Calls predicate every `step` until it returns true (-> true) or `timeout`
// has passed (-> false; the predicate is tried once more at the deadline).
bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = 10ms);

// The whole file, or "" when it cannot be read.
std::string read_file(const std::string& path);

}  // namespace primary::test

#include "common/value.hpp"

namespace primary::test {

// Short names the tests use for the reply readers of common/value.hpp.
inline std::string str(const Value& v, std::string_view key) { return reply_str(v, key); }
inline int64_t num(const Value& v, std::string_view key) { return reply_int(v, key); }
inline bool ok(const Value& v) { return reply_ok(v); }

}  // namespace primary::test
