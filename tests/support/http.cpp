#include "tests/support/http.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <regex>

namespace primary::test {
namespace {

size_t on_body(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
    static_cast<std::multimap<std::string, std::string>*>(out)->emplace(name, value);
  }
  return size * n;
}

}  // namespace

Http http_request(const std::string& url, const std::vector<std::string>& headers, const std::string* post_body) {
  Http r;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  if (post_body) {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_body->c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(post_body->size()));
  }
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(c);
  return r;
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    char* ek = curl_easy_escape(nullptr, k.c_str(), static_cast<int>(k.size()));
    char* ev = curl_easy_escape(nullptr, v.c_str(), static_cast<int>(v.size()));
    out += (out.empty() ? "" : "&") + std::string(ek) + "=" + ev;
    curl_free(ek);
    curl_free(ev);
  }
  return out;
}

Http Browser::post(const std::string& path, const std::vector<std::pair<std::string, std::string>>& fields) {
  const std::string body = form_encode(fields);
  return send(path, &body, {"Content-Type: application/x-www-form-urlencoded"});
}

std::string Browser::token(const std::string& path) {
  Http page = get(path);
  static const std::regex re(R"re(name="csrf" value="([^"]+)")re");
  std::smatch m;
  return std::regex_search(page.body, m, re) ? m[1].str() : std::string();
}

Http Browser::login(const std::string& password) {
  const std::string t = token("/login");
  return post("/login", {{"csrf", t}, {"password", password}});
}

std::string Browser::cookie_header() const {
  std::string out;
  for (const auto& [k, v] : cookies_) out += (out.empty() ? "" : "; ") + k + "=" + v;
  return out;
}

Http Browser::send(const std::string& path, const std::string* body, std::vector<std::string> extra) {
  if (!cookies_.empty()) extra.push_back("Cookie: " + cookie_header());
  Http r = http_request(base_ + path, extra, body);
  for (auto [it, end] = r.headers.equal_range("set-cookie"); it != end; ++it) {
    const std::string& v = it->second;
    const auto eq = v.find('='), semi = v.find(';');
    if (eq == std::string::npos) continue;
    const std::string name = v.substr(0, eq),
                      value = v.substr(eq + 1, semi == std::string::npos ? std::string::npos : semi - eq - 1);
    if (value.empty() || v.find("Max-Age=0") != std::string::npos)
      cookies_.erase(name);
    else
      cookies_[name] = value;
  }
  return r;
}

}  // namespace primary::test
