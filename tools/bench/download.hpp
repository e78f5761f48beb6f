// The download benchmark's pieces: a release published through the real
// update path (vendor feed, primary-updater, sync, approval), parallel
// pipelined downloads of it, and a broker-less file server to compare with.
//
// A download is the zguide's credit-based file transfer ("fileio3") over the
// MDP/0.1 client envelope: each client keeps `window` `update fetch`
// requests of `chunk` bytes in flight on one DEALER, asks for the next chunk
// for every reply, and hashes the chunks in order (out-of-order replies wait
// in memory). The same client code runs against the broker and against
// DirectFileServer, so only what is between them differs.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "tools/bench/children.hpp"
#include "tools/bench/load.hpp"
#include "tools/bench/stack.hpp"

namespace primary::bench {

// A release file of random bytes in DIR/releases with its releases.toml,
// signed into DIR/releases/feed with primary-vendor sign-feed.
struct PublishedRelease {
  std::string component = "benchpkg", version = "1.0.0";
  std::string dir, file, feed;  // release folder, the file's path, the feed's path
  std::string sha256;           // lowercase hex
  int64_t size = 0;
};
Result<PublishedRelease> publish_release(const BenchEnv& env, TempDir& dir, const std::string& vendor_key_file,
                                         int64_t size);

// A primary-updater started by the bench (not by primary-server, so it can
// carry a profiler prefix) on the supervisor's worker endpoint, event sink
// and private Redis, storing under DIR/updates and syncing `feed_url` only
// when asked (--sync-interval-s 0).
struct UpdaterOptions {
  std::string data_dir;  // primary-server's --data-dir
  std::string store_dir, vendor_pub, feed_url;
  int slots = 8;
};
Result<Child> start_updater(const BenchEnv& env, TempDir& dir, const UpdaterOptions& options);

// update.control sync, waits for the job to be done, approves the release
// and checks that `update check` offers it. The error says which step failed.
Result<bool> sync_and_approve(zmq::context_t& ctx, const std::string& front, const PublishedRelease& release,
                              std::chrono::seconds timeout);

struct DownloadOptions {
  std::string endpoint;
  std::string service = "update";
  std::string sha256;  // hex; the file's hash and its id in fetch requests
  int64_t size = 0;
  int64_t chunk = 1 << 20;
  int clients = 20;
  int window = 8;
  std::chrono::milliseconds silence{20000};  // no reply this long: the client gives up
};

struct DownloadResult {
  double seconds = 0;        // first request sent to last file complete
  double mb_s = 0;           // bytes of complete, verified files / seconds, MB = 2^20 bytes
  int64_t bytes = 0;         // received data bytes, all clients
  int verified = 0;          // clients whose SHA-256 matched
  int64_t retries = 0;       // chunks asked again after an error reply (BUSY, TIMEOUT, ...)
  double min_s = 0, max_s = 0;  // fastest and slowest client
  std::string first_error;
};

// C client threads (each with its own DEALER on `ctx`) download the whole
// file at the same time; returns when all are done or have given up.
DownloadResult run_downloads(zmq::context_t& ctx, const DownloadOptions& options);

// A broker-less file server: a ROUTER on its own thread and ZeroMQ context,
// bound to tcp://127.0.0.1:*, answering `update fetch` for one file the way
// primary-updater does per chunk: the request decoded and validated against
// the catalog, pread of the chunk, the reply {ok, rid, data, offset, size}
// packed with the same encoder, copied into a message.
class DirectFileServer {
 public:
  DirectFileServer(const std::string& path, const std::string& sha256);
  ~DirectFileServer();
  DirectFileServer(const DirectFileServer&) = delete;
  DirectFileServer& operator=(const DirectFileServer&) = delete;
  bool ok() const { return !endpoint_.empty(); }
  const std::string& endpoint() const { return endpoint_; }
  // Replies sent so far (read after the downloads).
  int64_t replies() const;

 private:
  int fd_ = -1;
  std::string sha256_;
  std::atomic<int64_t> replies_{0};
  std::unique_ptr<DirectServer> server_;  // last: stops before fd_ closes
  std::string endpoint_;
};

}  // namespace primary::bench
