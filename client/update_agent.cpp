#include "primary/client/update_agent.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <thread>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/mdp.hpp"
#include "common/release.hpp"
#include "common/schema.hpp"

namespace primary::client {
namespace {

std::string raw_key(const std::string& key) {
  if (key.size() == 32) return key;
  auto raw = base64url_decode(key);
  return raw && raw->size() == 32 ? *raw : std::string();
}

// An update reply decoded: ok with its map, or the error line.
struct Answer {
  bool ok = false;
  Value body;
  std::string error;  // "CODE: message" or a transport reason
  std::string code;
  int64_t retry_after_s = 0;
};

Answer decode(const std::vector<std::string>& f, const std::string& ep) {
  Answer a;
  const auto raw = mdp::reply_body(f, svc::kUpdate);
  if (!raw) {
    a.error = "malformed MDP reply from " + ep;
    return a;
  }
  auto body = unpack_map(*raw);
  if (!body) {
    a.error = "undecodable reply from " + ep + ": " + body.error().message;
    return a;
  }
  a.body = std::move(*body);
  a.ok = reply_ok(a.body);
  if (!a.ok) {
    a.code = reply_str(a.body, field::kCode);
    a.error = (a.code.empty() ? "ERROR" : a.code) + ": " + reply_str(a.body, field::kMessage);
    a.retry_after_s = std::max<int64_t>(reply_int(a.body, field::kRetryAfterS), 0);
  }
  return a;
}

Release as_release(const UpdateInfo& u) {
  Release r;
  r.component = u.component;
  r.version = u.version;
  r.channel = u.channel;
  r.size = u.size;
  r.sha256 = u.sha256;
  r.signature = u.signature;
  return r;
}

int64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

bool write_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

bool verify_update(const UpdateInfo& update, const std::string& vendor_key) {
  const std::string key = raw_key(vendor_key);
  return !key.empty() && verify_release(as_release(update), key);
}

UpdateAgent::UpdateAgent(UpdateOptions options, std::shared_ptr<Transport> transport)
    : options_(std::move(options)), transport_(std::move(transport)), vendor_key_(raw_key(options_.vendor_key)) {
  if (!transport_) transport_ = zmq_transport({options_.server_key, "", ""});
  options_.window = std::clamp(options_.window, 1, 64);
  options_.chunk = std::clamp<int64_t>(options_.chunk, 1, 1024 * 1024);
}

Expected<std::optional<UpdateInfo>> UpdateAgent::check(const std::string& component, const std::string& version,
                                                        const std::string& channel, const std::string& computer) {
  if (options_.endpoints.empty()) return Failure{"no server endpoint"};
  if (vendor_key_.empty()) return Failure{"no usable vendor key"};
  Value::Map fields = {{field::kComponent, Value(component)}, {field::kVersion, Value(version)}, {field::kChannel, Value(channel)}};
  if (!computer.empty()) fields.emplace_back(field::kComputer, Value(computer));
  const std::string body = encode_request(opname::kCheck, std::move(fields));
  const size_t n = options_.endpoints.size();
  const int attempts = options_.attempts > 0 ? options_.attempts : static_cast<int>(std::max<size_t>(3, 2 * n));
  std::string last = "no attempt made";
  for (int attempt = 0; attempt < attempts; ++attempt) {
    const std::string& ep = options_.endpoints[current_ % n];
    auto conn = transport_->connect(ep);
    if (!conn || !(*conn)->send(mdp::request_frames(svc::kUpdate, body))) {
      last = conn ? "cannot send to " + ep : conn.error();
      current_ = (current_ + 1) % n;
      continue;
    }
    auto frames = (*conn)->receive(options_.timeout);
    if (!frames) {
      last = "no reply from " + ep;
      current_ = (current_ + 1) % n;
      continue;
    }
    Answer a = decode(*frames, ep);
    if (!a.ok) {
      last = a.error;
      if (a.code == "UNAVAILABLE" || a.code == "BUSY" || a.code.empty()) {
        current_ = (current_ + 1) % n;
        continue;
      }
      return Failure{last};
    }
    const Value* u = a.body.find(field::kUpdate);
    if (!u || u->is_nil()) return std::optional<UpdateInfo>{};
    if (!u->is_map()) return Failure{"malformed update offer from " + ep};
    UpdateInfo info{reply_str(*u, field::kComponent), reply_str(*u, field::kVersion),   reply_str(*u, field::kChannel),
                    reply_int(*u, field::kSize),       reply_str(*u, field::kSha256),    reply_str(*u, field::kSignature),
                    reply_str(*u, field::kNotes)};
    if (!verify_release(as_release(info), vendor_key_))
      return Failure{"offer of " + info.component + " " + info.version + " is not signed by the vendor key"};
    return std::optional<UpdateInfo>(std::move(info));
  }
  return Failure{last};
}

Expected<int64_t> UpdateAgent::download(const UpdateInfo& u, const std::string& path) {
  if (options_.endpoints.empty()) return Failure{"no server endpoint"};
  if (vendor_key_.empty()) return Failure{"no usable vendor key"};
  if (!verify_release(as_release(u), vendor_key_) || !valid_sha256_hex(u.sha256) || u.size < 0)
    return Failure{"release " + u.component + " " + u.version + " is not signed by the vendor key"};
  const std::string part = path + ".part";
  int64_t have = file_size(part);
  if (have > u.size) {
    ::truncate(part.c_str(), 0);
    have = 0;
  }
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Failure{"cannot open " + part + ": " + std::strerror(errno)};
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  const int64_t start = have;
  const size_t n = options_.endpoints.size();
  const int attempts = options_.attempts > 0 ? options_.attempts : static_cast<int>(std::max<size_t>(3, 2 * n));
  int failures = 0;
  std::string last;
  uint64_t rid_seq = 0;
  while (have < u.size) {
    if (failures >= attempts) return Failure{"download stopped at byte " + std::to_string(have) + ": " + last};
    const std::string ep = options_.endpoints[current_ % n];
    auto conn = transport_->connect(ep);
    if (!conn) {
      last = conn.error();
      ++failures;
      current_ = (current_ + 1) % n;
      continue;
    }
    // One connection: keep `window` requests in flight; replies may come
    // back in any order, so early chunks wait in `ready` until their turn.
    std::map<std::string, int64_t> in_flight;  // rid -> offset
    std::map<int64_t, std::string> ready;      // offset -> data
    int64_t next = have;
    bool broken = false;
    while (have < u.size && !broken) {
      while (static_cast<int>(in_flight.size()) < options_.window && next < u.size) {
        const int64_t len = std::min(options_.chunk, u.size - next);
        const std::string rid = std::to_string(++rid_seq);
        const std::string body = encode_request(
            opname::kFetch, {{field::kSha256, Value(u.sha256)}, {field::kOffset, Value(next)}, {field::kLength, Value(len)}, {field::kRid, Value(rid)}});
        if (!(*conn)->send(mdp::request_frames(svc::kUpdate, body))) {
          broken = true;
          last = "cannot send to " + ep;
          break;
        }
        in_flight[rid] = next;
        next += len;
      }
      if (broken) break;
      auto frames = (*conn)->receive(options_.timeout);
      if (!frames) {
        last = "no reply from " + ep + " within " + std::to_string(options_.timeout.count()) + " ms";
        broken = true;
        break;
      }
      Answer a = decode(*frames, ep);
      const std::string rid = reply_str(a.body, field::kRid);
      auto it = in_flight.find(rid);
      if (it == in_flight.end()) continue;  // a stray reply
      const int64_t offset = it->second;
      in_flight.erase(it);
      if (!a.ok) {
        last = a.error;
        if (a.code == "BUSY" || a.code == "UNAVAILABLE") {
          std::this_thread::sleep_for(std::chrono::seconds(std::min<int64_t>(a.retry_after_s, 5)) +
                                      std::chrono::milliseconds(100));
          broken = true;  // start again from the first missing byte
          break;
        }
        return Failure{"fetch at byte " + std::to_string(offset) + ": " + a.error};
      }
      const Value* data = a.body.find(field::kData);
      const int64_t expect = std::min(options_.chunk, u.size - offset);
      if (!data || data->kind() != Value::Kind::Bin || reply_int(a.body, field::kOffset) != offset ||
          reply_int(a.body, field::kSize) != u.size || static_cast<int64_t>(data->as_bin().bytes.size()) != expect)
        return Failure{"fetch at byte " + std::to_string(offset) + ": the server's copy does not match the release"};
      ready[offset] = data->as_bin().bytes;
      while (!ready.empty() && ready.begin()->first == have) {
        if (!write_all(fd, ready.begin()->second)) return Failure{"cannot write " + part + ": " + std::strerror(errno)};
        have += static_cast<int64_t>(ready.begin()->second.size());
        ready.erase(ready.begin());
        failures = 0;
        if (options_.on_progress) options_.on_progress(have, u.size);
      }
    }
    if (broken) {
      ++failures;
      current_ = (current_ + 1) % n;
    }
  }
  if (::fsync(fd) != 0) return Failure{"cannot flush " + part + ": " + std::strerror(errno)};
  auto hash = sha256_file_hex(part);
  if (!hash || *hash != u.sha256) {
    ::unlink(part.c_str());
    return Failure{"sha256 of the download does not match the signed release; discarded"};
  }
  if (::rename(part.c_str(), path.c_str()) != 0) return Failure{"cannot rename to " + path + ": " + std::strerror(errno)};
  return u.size - start;
}

}  // namespace primary::client
