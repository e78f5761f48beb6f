#include "tools/bench/download.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <fstream>
#include <future>
#include <latch>
#include <map>
#include <random>
#include <thread>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/mdp.hpp"
#include "common/process.hpp"
#include "common/schema.hpp"

namespace primary::bench {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Error failure(std::string message) { return Error{Code::Unavailable, std::move(message)}; }

std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

}  // namespace

// ---------------------------------------------------------------- the release

Result<PublishedRelease> publish_release(const BenchEnv& env, TempDir& dir, const std::string& vendor_key_file,
                                         int64_t size) {
  PublishedRelease r;
  r.dir = dir.file("releases");
  r.size = size;
  if (::mkdir(r.dir.c_str(), 0700) != 0) return failure("cannot create " + r.dir);
  const std::string name = r.component + "-" + r.version + ".bin";
  r.file = r.dir + "/" + name;
  r.feed = r.dir + "/feed";
  {
    std::ofstream out(r.file, std::ios::binary);
    std::mt19937_64 rng(std::random_device{}());
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    std::vector<uint64_t> block(1 << 17);  // 1 MiB
    for (int64_t done = 0; done < size;) {
      for (auto& w : block) w = rng();
      const auto n = static_cast<size_t>(std::min<int64_t>(size - done, int64_t{1} << 20));
      const auto* bytes = reinterpret_cast<const unsigned char*>(block.data());
      out.write(reinterpret_cast<const char*>(bytes), static_cast<std::streamsize>(n));
      crypto_hash_sha256_update(&st, bytes, n);
      done += static_cast<int64_t>(n);
    }
    if (!out.flush()) return failure("cannot write " + r.file);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, digest);
    r.sha256 = hex_encode(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
  }
  std::ofstream(r.dir + "/releases.toml") << "[[release]]\ncomponent = \"" << r.component << "\"\nversion = \""
                                          << r.version << "\"\nchannel = \"stable\"\nfile = \"" << name
                                          << "\"\nnotes = \"primary-bench download\"\n";
  if (!run_capture({env.bin("primary-vendor"), "sign-feed", "--key", vendor_key_file, "--dir", r.dir, "--out",
                    r.feed},
                   dir.file("vendor.log"), 300s))
    return failure("primary-vendor sign-feed failed:\n" + log_tail(dir.file("vendor.log")));
  return r;
}

// ---------------------------------------------------------------- the updater

Result<Child> start_updater(const BenchEnv& env, TempDir& dir, const UpdaterOptions& o) {
  if (::access(env.bin("primary-updater").c_str(), X_OK) != 0)
    return failure(env.bin("primary-updater") + " not found (build it, or give --bin-dir)");
  const std::string password = trimmed(read_text_file(o.data_dir + "/redis/password"));
  if (password.empty()) return failure("no Redis password in " + o.data_dir + "/redis/password");
  // The URL primary-server hands its own workers (as PRIMARY_REDIS).
  const std::string redis = "unix://" + o.data_dir + "/run/redis.sock?password=" + password;
  std::vector<std::string> argv = env.updater_prefix;
  argv.insert(argv.end(), {env.bin("primary-updater"),
                           "--broker", "ipc://" + o.data_dir + "/run/workers.sock",
                           "--event-sink", "ipc://" + o.data_dir + "/run/events.sock",
                           "--redis", redis,
                           "--update-dir", o.store_dir,
                           "--vendor-key", o.vendor_pub,
                           "--update-feed", o.feed_url,
                           "--sync-interval-s", "0",
                           "--slots", std::to_string(o.slots),
                           "--log-level", env.log_level});
  Child c = Child::start(argv, dir.file("updater.log"));
  if (!c.started()) return failure("cannot start primary-updater");
  return c;
}

Result<bool> sync_and_approve(zmq::context_t& ctx, const std::string& front, const PublishedRelease& release,
                              std::chrono::seconds timeout) {
  auto started = call(ctx, front, "update.control", "sync");
  if (!started) return failure("update.control sync: " + started.error().message);
  const std::string job = reply_str(*started, "job");
  if (!reply_ok(*started) || job.empty()) return failure("update.control sync refused: " + to_json(*started));
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto r = call(ctx, front, "update.control", "releases");
    const Value* sync = r ? r->find("sync") : nullptr;
    if (sync && reply_str(*sync, "job") == job && reply_str(*sync, "state") == "done") {
      if (reply_str(*sync, "result") != "ok") return failure("sync job failed: " + to_json(*sync));
      break;
    }
    if (Clock::now() >= deadline)
      return failure("sync job " + job + " not done after " + std::to_string(timeout.count()) + " s");
    std::this_thread::sleep_for(100ms);
  }
  auto approved = call(ctx, front, "update.control", "approve",
                       {{"component", Value(release.component)}, {"version", Value(release.version)}});
  if (!approved || !reply_ok(*approved))
    return failure("approve: " + (approved ? to_json(*approved) : approved.error().message));
  auto offer = call(ctx, front, "update", "check", {{"component", Value(release.component)}, {"version", Value("0.0.1")}});
  const Value* u = offer ? offer->find("update") : nullptr;
  if (!u || !u->is_map() || reply_str(*u, "sha256") != release.sha256)
    return failure("update check does not offer the release: " + (offer ? to_json(*offer) : offer.error().message));
  return true;
}

// ---------------------------------------------------------------- the clients

namespace {

struct ClientOutcome {
  bool verified = false;
  int64_t bytes = 0, retries = 0;
  Clock::time_point done{};
  std::string error;
};

// One client: the credit-based fetch loop of one whole file.
class Downloader {
 public:
  Downloader(zmq::context_t& ctx, const DownloadOptions& o) : o_(o), sock_(ctx, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::linger, 0);
    sock_.set(zmq::sockopt::rcvhwm, 1000);
    sock_.set(zmq::sockopt::sndhwm, 1000);
    sock_.connect(o_.endpoint);
    chunks_ = (o_.size + o_.chunk - 1) / o_.chunk;
    EVP_DigestInit_ex(hash_.get(), EVP_sha256(), nullptr);
  }

  ClientOutcome run() {
    mdp::Frames frames;
    while (hashed_ < chunks_) {
      while (inflight_ < o_.window && (!resend_.empty() || next_ < chunks_)) {
        int64_t idx = next_;
        if (!resend_.empty()) {
          idx = resend_.front();
          resend_.pop_front();
        } else {
          ++next_;
        }
        send(idx);
      }
      zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, o_.silence) == 0) {
        out_.error = "no reply for " + std::to_string(o_.silence.count()) + " ms (" + std::to_string(inflight_) +
                     " requests in flight, " + std::to_string(hashed_) + "/" + std::to_string(chunks_) + " chunks)";
        return std::move(out_);
      }
      while (mdp::recv_frames(sock_, frames, zmq::recv_flags::dontwait))
        if (!on_reply(frames)) return std::move(out_);
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(hash_.get(), digest, &len);
    const std::string hex = hex_encode(std::string_view(reinterpret_cast<const char*>(digest), len));
    out_.verified = hex == o_.sha256;
    if (!out_.verified) out_.error = "SHA-256 mismatch: got " + hex;
    out_.done = Clock::now();
    return std::move(out_);
  }

 private:
  void send(int64_t idx) {
    const int64_t offset = idx * o_.chunk;
    const std::string body = encode_request("fetch", {{"sha256", Value(o_.sha256)},
                                                      {"offset", Value(offset)},
                                                      {"length", Value(std::min(o_.chunk, o_.size - offset))},
                                                      {"rid", Value(idx)}});
    mdp::send_request(sock_, o_.service, body);
    ++inflight_;
  }

  bool fail(std::string why) {
    out_.error = std::move(why);
    return false;
  }

  void hash(std::string_view data) {
    EVP_DigestUpdate(hash_.get(), data.data(), data.size());
    ++hashed_;
  }

  bool on_reply(mdp::Frames& f) {
    const auto reply = mdp::reply_body(f, o_.service);
    if (!reply) return fail("malformed reply envelope (" + std::to_string(f.size()) + " frames)");
    --inflight_;
    auto v = unpack_map(*reply);
    if (!v) return fail("reply body: " + v.error().message);
    const Value* rid = v->find("rid");
    if (!rid || !rid->is_int() || rid->as_int() < 0 || rid->as_int() >= chunks_)
      return fail("reply without a chunk rid: " + to_json(*v));
    const int64_t idx = rid->as_int();
    if (!reply_ok(*v)) {
      // Overload (BUSY, or a request that waited too long for a worker)
      // is retried, as a real Client would; anything else is a failure.
      const std::string code = reply_str(*v, "code");
      if ((code == "BUSY" || code == "UNAVAILABLE") && out_.retries < 10000) {
        ++out_.retries;
        resend_.push_back(idx);
        return true;
      }
      return fail("error reply: " + to_json(*v));
    }
    const Value* data = v->find("data");
    const Value* offset = v->find("offset");
    const Value* size = v->find("size");
    if (!data || data->kind() != Value::Kind::Bin || !offset || !offset->is_int() || !size || !size->is_int())
      return fail("fetch reply without data/offset/size");
    const std::string& bytes = data->as_bin().bytes;
    const int64_t want = std::min(o_.chunk, o_.size - idx * o_.chunk);
    if (offset->as_int() != idx * o_.chunk || size->as_int() != o_.size ||
        static_cast<int64_t>(bytes.size()) != want)
      return fail("fetch reply for chunk " + std::to_string(idx) + " has the wrong offset, size or length");
    out_.bytes += want;
    if (idx != hashed_) {
      waiting_.emplace(idx, bytes);
      return true;
    }
    hash(bytes);
    for (auto it = waiting_.begin(); it != waiting_.end() && it->first == hashed_; it = waiting_.erase(it))
      hash(it->second);
    return true;
  }

  const DownloadOptions& o_;
  zmq::socket_t sock_;
  int64_t chunks_ = 0, next_ = 0, hashed_ = 0;
  int inflight_ = 0;
  std::deque<int64_t> resend_;
  std::map<int64_t, std::string> waiting_;  // out-of-order chunks
  // OpenSSL's SHA-256 (SHA-NI where the CPU has it, several times
  // libsodium's portable one): 20 clients hashing on the server's cores
  // must not be what limits a benchmark of the server.
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> hash_{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  ClientOutcome out_;
};

}  // namespace

DownloadResult run_downloads(zmq::context_t& ctx, const DownloadOptions& o) {
  std::latch ready(o.clients + 1);
  std::vector<std::future<ClientOutcome>> futures;
  for (int i = 0; i < o.clients; ++i)
    futures.push_back(std::async(std::launch::async, [&] {
      Downloader d(ctx, o);
      ready.arrive_and_wait();
      return d.run();
    }));
  ready.arrive_and_wait();
  const auto t0 = Clock::now();
  DownloadResult r;
  Clock::time_point last = t0;
  r.min_s = 1e18;
  for (auto& f : futures) {
    ClientOutcome c = f.get();
    r.bytes += c.bytes;
    r.retries += c.retries;
    if (c.verified) {
      ++r.verified;
      last = std::max(last, c.done);
      const double s = std::chrono::duration<double>(c.done - t0).count();
      r.min_s = std::min(r.min_s, s);
      r.max_s = std::max(r.max_s, s);
    } else if (r.first_error.empty()) {
      r.first_error = c.error;
    }
  }
  if (r.verified == 0) r.min_s = 0;
  r.seconds = std::chrono::duration<double>(last - t0).count();
  const double mb = static_cast<double>(r.verified) * static_cast<double>(o.size) / (1 << 20);
  r.mb_s = r.seconds > 0 ? mb / r.seconds : 0;
  return r;
}

// ---------------------------------------------------------------- DirectFileServer

namespace {

// One fetch, answered like primary-updater's handler and worker runtime do.
std::string serve_fetch(int fd, const std::string& sha256, std::string_view body) {
  Value rid;
  auto req = decode_request("update", body, CodecLimits{}, &rid);
  if (!req) return encode_reply(Reply::failure(req.error()), rid);
  if (req->op() != "fetch") return encode_reply(Reply::failure(Code::UnknownOp, "fetch only"), rid);
  if (req->str("sha256") != sha256) return encode_reply(Reply::failure(Code::NotFound, "no release with that sha256"), rid);
  const int64_t offset = req->integer("offset");
  const int64_t length = req->integer("length");
  struct stat st {};
  if (::fstat(fd, &st) != 0) return encode_reply(Reply::failure(Code::Unavailable, "cannot stat"), rid);
  const int64_t size = st.st_size;
  if (offset > size) return encode_reply(Reply::failure(Code::BadRequest, "field 'offset': beyond the end"), rid);
  std::string out = read_at(fd, offset, std::min(length, size - offset));
  return encode_reply(
      Reply::success({{"data", Value(Bin{std::move(out)})}, {"offset", Value(offset)}, {"size", Value(size)}}), rid);
}

}  // namespace

DirectFileServer::DirectFileServer(const std::string& path, const std::string& sha256)
    : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)), sha256_(sha256) {
  if (fd_ < 0) return;
  server_ = std::make_unique<DirectServer>([this](mdp::Frames& frames) {
    // [client identity, "", MDPC01, service, body]: the reply reuses the envelope.
    if (frames.size() != 5) return false;
    frames[4] = mdp::frame(serve_fetch(fd_, sha256_, mdp::view(frames[4])));
    replies_.fetch_add(1, std::memory_order_relaxed);
    return true;
  });
  endpoint_ = server_->endpoint();
}

DirectFileServer::~DirectFileServer() {
  server_.reset();
  if (fd_ >= 0) ::close(fd_);
}

int64_t DirectFileServer::replies() const { return replies_.load(); }

}  // namespace primary::bench
