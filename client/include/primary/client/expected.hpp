// A value or the reason there is none: how the client library reports an
// expected failure (a refused lease, an unreadable setup file) without
// exceptions.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace primary::client {

// The reason part of an Expected; one line, for humans.
struct Failure {
  std::string reason;
};

template <class T>
class Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Expected(Failure failure) : v_(std::in_place_index<1>, std::move(failure)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  // Why there is no value; only when !ok().
  const std::string& error() const { return std::get<1>(v_).reason; }

 private:
  std::variant<T, Failure> v_;
};

}  // namespace primary::client
