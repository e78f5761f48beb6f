// The console's listening socket, which primary-server opens itself and
// hands to primary-web (--listen-fd) so that the console can run only while
// someone uses it: the server holds the port, a connection waits in the
// socket's backlog while primary-web starts, and an idle primary-web exits.
#pragma once

#include <string>

#include "common/errors.hpp"
#include "web/password.hpp"

namespace primary::web {

// A TCP socket bound to `address` and listening (close-on-exec, SO_REUSEADDR),
// or an error naming the address.
Result<int> listen_socket(const ListenAddress& address);
// The port `fd` is bound to, or an error when `fd` is not a listening TCP socket.
Result<int> listening_port(int fd);
// What DATA/run/web.address holds: "http://HOST:PORT" ("https", "[v6]").
std::string console_url(const std::string& host, int port, bool https);

}  // namespace primary::web
