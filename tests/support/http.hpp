// HTTP for the tests (libcurl): one request, its status, body and headers.
// The caller runs curl_global_init once.
#pragma once

#include <map>
#include <string>
#include <utility>
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

// An application/x-www-form-urlencoded body.
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);

// A browser-like client of the web console: keeps the cookies it is given
// (drops one set with Max-Age=0), never follows redirects (tests look at
// them), reads a page's CSRF token.
class Browser {
 public:
  explicit Browser(std::string base) : base_(std::move(base)) {}

  Http get(const std::string& path, const std::vector<std::string>& extra = {}) { return send(path, nullptr, extra); }
  Http post(const std::string& path, const std::vector<std::pair<std::string, std::string>>& fields);
  // The CSRF token of the first form on `path`.
  std::string token(const std::string& path = "/");
  // GET /login, then POST the password with the login form's token.
  Http login(const std::string& password);
  std::string cookie_header() const;
  std::map<std::string, std::string>& cookies() { return cookies_; }
  const std::string& base() const { return base_; }

 private:
  Http send(const std::string& path, const std::string* body, std::vector<std::string> extra);

  std::string base_;
  std::map<std::string, std::string> cookies_;
};

}  // namespace primary::test
