// Error codes of PROTOCOL.md section 3, and the result type that carries an
// expected failure as a value along the message path.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace primary {

enum class Code {
  BadRequest,
  UnknownOp,
  Unauthorized,
  NotUnlocked,
  NoLicensesLeft,
  InvalidUnlockCode,
  NotFound,
  Unavailable,
  Busy,
  Internal,
  InvalidSeatCode,
};

std::string_view code_name(Code c);
std::optional<Code> code_from_name(std::string_view name);

struct Error {
  Code code;
  std::string message;
};

// Either a T or an Error; never throws on the message path.
template <class T>
class Result {
 public:
  Result(T v) : v_(std::move(v)) {}
  Result(Error e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Success with nothing to carry, or an Error: the one spelling of a result
// without a value (`return {};` for success, `if (!st) st.error()`).
template <>
class Result<void> {
 public:
  Result() = default;
  Result(Error e) : e_(std::move(e)) {}
  bool ok() const { return !e_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *e_; }

 private:
  std::optional<Error> e_;
};
using Status = Result<void>;

}  // namespace primary
