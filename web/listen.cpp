#include "web/listen.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace primary::web {

Result<int> listen_socket(const ListenAddress& address) {
  const std::string where = address.host + ":" + std::to_string(address.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return Error{Code::BadRequest, "cannot listen on " + where + ": " + ::gai_strerror(rc)};
  std::string why = "no address";
  int fd = -1;
  for (addrinfo* ai = found; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    const int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) return Error{Code::Unavailable, "cannot listen on " + where + ": " + why};
  return fd;
}

Result<int> listening_port(int fd) {
  int listening = 0;
  socklen_t len = sizeof listening;
  sockaddr_storage ss{};
  socklen_t sslen = sizeof ss;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sslen) != 0 ||
      (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
    return Error{Code::BadRequest, "descriptor " + std::to_string(fd) + " is not a listening TCP socket"};
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

std::string console_url(const std::string& host, int port, bool https) {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return std::string(https ? "https" : "http") + "://" + h + ":" + std::to_string(port);
}

}  // namespace primary::web
