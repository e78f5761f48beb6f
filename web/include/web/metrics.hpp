// GET /metrics of primary-web: admin.metrics rendered in the Prometheus
// text exposition format 0.0.4, and who may read it.
//
// A scrape from a loopback peer needs nothing (a Prometheus on the server's
// host, or an ssh tunnel); any other peer must send
// `Authorization: Bearer TOKEN` with the token of --metrics-token-file, and
// without one configured it is refused outright. --metrics-require-token
// asks for the token from loopback peers too, for a console behind a
// reverse proxy on the same host (every request then comes from loopback).
// The token is compared in constant time. Scrapes need no login session.
#pragma once

#include <string>
#include <string_view>

#include "common/value.hpp"

namespace primary::web {

enum class MetricsAccess {
  Allow,
  Unauthorized,  // 401: no token or the wrong one
  Forbidden,     // 403: a token is needed and none is configured
};

// Whether a scrape may proceed. `loopback`: the peer's address is loopback;
// `token`: the configured token ("" none); `authorization`: the request's
// Authorization header ("" when absent).
MetricsAccess metrics_access(bool loopback, bool require_token, const std::string& token,
                             std::string_view authorization);

// The admin.metrics reply in the text format, every metric prefixed
// `primary_`; docs/operations.md lists them.
std::string render_prometheus(const Value& reply);

// A label value with \ " and newline escaped (and any byte outside
// printable ASCII replaced by '?').
std::string escape_label_value(std::string_view v);

}  // namespace primary::web
