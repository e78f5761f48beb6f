// HTTP for the tests (libcurl): one request, its status, body and headers.
// The caller runs curl_global_init once.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace primary::test {

struct Http {
  long status = 0;  // 0: no response
  std::string body;
  std::multimap<std::string, std::string> headers;  // names lower-cased
  // The first value of header `name` (lower-case), "" when absent.
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// GET `url`, or POST `post_body` when given; `headers` are whole header
// lines. Redirects are not followed, the limit is 30 s, and TLS
// certificates are not checked (the tests' servers use self-signed ones).
Http http_request(const std::string& url, const std::vector<std::string>& headers = {},
                  const std::string* post_body = nullptr);

inline Http http_get(const std::string& url, const std::vector<std::string>& headers = {}) {
  return http_request(url, headers);
}

}  // namespace primary::test
