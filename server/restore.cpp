// primary-server --restore FILE: the supervisor's side of server/backup.hpp.
//
// The file is read and its checksum checked before the data dir is even
// created, so a damaged backup changes nothing. Once the data dir is locked
// the restore refuses a data dir (or external Redis) that already holds
// state unless --force, leaves a marker (DATA/restore-incomplete), writes
// the key files (0600) and artifacts, and after Redis is up, before the
// broker, puts the Redis keys back in one MULTI/EXEC. A backup in a newer
// data layout than this release's is refused with the file; an older one
// is migrated after its keys are back, like any older data
// (Supervisor::ensure_layout). Only then is the
// marker removed: a restore cut short by a crash leaves a data dir that
// refuses a plain start (it would serve with keys but no reservations)
// until the restore is run again with --force.
//
// Durability: the private Redis runs with appendonly yes and appendfsync
// always, so EXEC is answered only once the transaction (RESTORE commands
// carrying each key's full value) is fsynced in the AOF; nothing is served
// before that. No AOF rewrite is needed: Redis folds the RESTOREs into
// its base file at its next automatic rewrite.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "server/backup.hpp"
#include "common/layout.hpp"
#include "common/process.hpp"
#include "common/redis.hpp"
#include "server/supervisor.hpp"

namespace primary {

namespace fs = std::filesystem;

namespace {

Error refuse(std::string message) { return Error{Code::Unavailable, std::move(message)}; }

std::string marker_path(const DataLayout& l) { return l.root + "/restore-incomplete"; }
std::string keys_dir(const DataLayout& l) { return l.root + "/keys"; }
std::string objects_dir(const DataLayout& l) { return l.root + "/updates/objects"; }

bool non_empty_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && !fs::is_empty(path, ec);
}

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Unix ms -> "2026-11-29T10:16:45Z".
std::string utc_text(int64_t ms) {
  const time_t t = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string manifest_text(const Value& m, std::string_view key) {
  const Value* v = m.find(key);
  if (!v) return "?";
  if (v->is_str()) return v->as_str();
  if (v->is_int()) return std::to_string(v->as_int());
  return "?";
}

}  // namespace

Status Supervisor::load_backup() {
  if (settings_.restore_file.empty()) {
    if (settings_.force) return refuse("--force only applies with --restore FILE");
    return {};
  }
  auto contents = backup::read(settings_.restore_file);
  if (!contents) return refuse(contents.error().message);
  if (contents->layout > layout::kCurrent)
    return refuse("backup " + settings_.restore_file + ": " + layout::newer_message(contents->layout));
  restore_ = std::make_shared<backup::Contents>(std::move(*contents));
  return {};
}

Status Supervisor::prepare_restore() {
  const std::string marker = marker_path(layout_);
  if (!restore_) {
    if (::access(marker.c_str(), F_OK) == 0)
      return refuse("data dir " + layout_.root + " holds an unfinished restore of " + first_line(marker) +
                    "; run primary-server --restore FILE --force to finish it");
    return {};
  }

  // What is there already: any of it makes this a replacement.
  std::vector<std::string> found;
  if (::access(marker.c_str(), F_OK) == 0) found.push_back("an unfinished restore");
  if (non_empty_dir(keys_dir(layout_))) found.push_back("keys/");
  for (const char* f : {"appendonlydir", "appendonly.aof", "dump.rdb"})
    if (::access((layout_.redis_dir + "/" + f).c_str(), F_OK) == 0) found.push_back(std::string("redis/") + f);
  if (non_empty_dir(objects_dir(layout_))) found.push_back("updates/objects/");
  if (!settings_.redis_url.empty()) {
    auto url = parse_redis_url(settings_.redis_url);
    if (!url) return refuse(url.error().message);
    Redis redis(*url);
    auto n = backup::count_product_keys(redis);
    if (!n) return refuse("cannot restore into " + redacted(*url) + ": " + n.error().message);
    if (*n > 0) found.push_back(std::to_string(*n) + " product keys in " + redacted(*url));
  }
  if (!found.empty() && !settings_.force) {
    std::string what;
    for (const auto& f : found) what += (what.empty() ? "" : ", ") + f;
    return refuse("data dir " + layout_.root + " already holds server state (" + what +
                  "); restore into a new data dir, or add --force to replace it");
  }

  const std::string source = fs::absolute(settings_.restore_file).string();
  if (auto written = write_file_atomic(marker, source + "\n", 0600); !written)
    return refuse(written.error().message);
  std::error_code ec;
  fs::create_directories(keys_dir(layout_), ec);
  ::chmod(keys_dir(layout_).c_str(), 0700);
  for (const auto& [name, data] : restore_->key_files) {
    const std::string path = keys_dir(layout_) + "/" + name;
    if (auto written = write_file_atomic(path, data, 0600); !written) return refuse(written.error().message);
  }
  if (!restore_->artifacts.empty()) {
    for (const auto& dir : {layout_.root + "/updates", objects_dir(layout_)}) {
      fs::create_directories(dir, ec);
      ::chmod(dir.c_str(), 0700);
    }
    for (const auto& a : restore_->artifacts)
      if (auto ok = backup::extract_artifact(settings_.restore_file, a, objects_dir(layout_) + "/" + a.name); !ok)
        return refuse(ok.error().message);
  }
  const Value& m = restore_->manifest;
  spdlog::info("restoring {} (sha256 {}): made {} by {} on {} from {}; {} Redis keys, {} reservations, "
               "{} key files, {} artifacts{}",
               source, restore_->sha256,
               m.find("snapshot_ms") && m.find("snapshot_ms")->is_int() ? utc_text(m.find("snapshot_ms")->as_int()) : "?", manifest_text(m, "created_by"),
               manifest_text(m, "host"), manifest_text(m, "data_dir"), restore_->redis.size(),
               manifest_text(m, "reservations"), restore_->key_files.size(), restore_->artifacts.size(),
               found.empty() ? "" : " (--force: replacing what was there)");
  return {};
}

bool Supervisor::finish_restore() {
  if (!restore_) return true;
  auto url = parse_redis_url(redis_url_);
  if (!url) {
    spdlog::error("restore: {}", url.error().message);
    return false;
  }
  // Large restores take a while; the timeout is per read.
  Redis redis(*url, RedisOptions{2000, 120000});
  auto n = backup::restore(redis, restore_->redis, settings_.force);
  if (!n) {
    spdlog::error("restore of {} into Redis failed: {}; the data dir is left marked unfinished",
                  settings_.restore_file, n.error().message);
    return false;
  }
  auto count = backup::count_product_keys(redis);
  spdlog::info("restored {} Redis keys ({} present now; expired ones are dropped), {} key files, {} artifacts",
               *n, count ? std::to_string(*count) : "?", restore_->key_files.size(),
               restore_->artifacts.size());
  ::unlink(marker_path(layout_).c_str());
  int dir = ::open(layout_.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  restore_.reset();
  return true;
}

}  // namespace primary
