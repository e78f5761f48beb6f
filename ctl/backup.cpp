// primaryctl backup: one file with the server's whole state, taken on the
// server's host (the key files live only there). The format, the atomic
// Redis snapshot and the restore are in server/backup.hpp; restoring is
// `primary-server --restore FILE`.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <sstream>

#include "server/backup.hpp"
#include "common/layout.hpp"
#include "common/names.hpp"
#include "common/process.hpp"
#include "common/redis.hpp"
#include "ctl/commands.hpp"

namespace primary::ctl {
namespace {

namespace fs = std::filesystem;

struct BackupArgs {
  std::string out, data_dir = "./var", redis;
  bool no_artifacts = false;
};

bool sha256_name(const std::string& name) {
  return name.size() == 64 && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

int backup(Context& ctx, const BackupArgs& a) {
  const auto started = std::chrono::steady_clock::now();
  auto failed = [&](const std::string& why, int code = kServerError) {
    ctx.err << "primaryctl backup: " << why << "\n";
    return code;
  };
  std::error_code ec;
  const fs::path data = fs::absolute(a.data_dir, ec).lexically_normal();
  const fs::path keys_dir = data / "keys", objects_dir = data / "updates" / "objects";

  // Key files first: a data dir without a lease key is not a server's.
  if (!fs::exists(keys_dir / "lease.key", ec))
    return failed("no " + (keys_dir / "lease.key").string() +
                      ": give --data-dir the primary-server data directory", kUsage);
  std::vector<std::pair<std::string, std::string>> key_files;
  for (const auto& entry : fs::directory_iterator(keys_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name.find(".tmp") != std::string::npos) continue;
    auto text = read_file(entry.path());
    if (!text) return failed("cannot read " + entry.path().string() + " (run as the server's user)");
    key_files.emplace_back(name, std::move(*text));
  }
  if (ec) return failed("cannot list " + keys_dir.string() + ": " + ec.message());
  std::sort(key_files.begin(), key_files.end());

  RedisUrl url;
  if (a.redis.empty()) {
    auto password = read_file(data / "redis" / "password");
    if (!password) return failed("cannot read " + (data / "redis" / "password").string() +
                                 " (run as the server's user, or give --redis URL)");
    while (!password->empty() && std::isspace(static_cast<unsigned char>(password->back())))
      password->pop_back();
    url.kind = RedisUrl::Kind::Unix;
    url.path = (data / "run" / "redis.sock").string();
    url.password = *password;
  } else {
    auto parsed = parse_redis_url(a.redis);
    if (!parsed) return failed("--redis: " + parsed.error().message, kUsage);
    url = *parsed;
  }
  // The snapshot can be large: allow it time (the timeout is per read).
  Redis redis(url, RedisOptions{2000, 120000});
  // A layout this program does not know is not one it can describe.
  auto found = layout::read(redis);
  if (!found)
    return failed("cannot read the data layout (" + found.error().message + ")" +
                  (a.redis.empty() ? "; is primary-server running on " + data.string() + "?" : ""));
  if (found->version > layout::kCurrent) return failed(layout::newer_message(found->version), kUsage);
  auto snap = backup::snapshot(redis);
  if (!snap)
    return failed("cannot take the Redis snapshot (" + snap.error().message + ")" +
                  (a.redis.empty() ? "; is primary-server running on " + data.string() + "?" : ""));

  std::vector<fs::path> artifacts;
  if (!a.no_artifacts && fs::is_directory(objects_dir, ec)) {
    for (const auto& entry : fs::recursive_directory_iterator(objects_dir, ec))
      if (entry.is_regular_file() && sha256_name(entry.path().filename().string()))
        artifacts.push_back(entry.path());
    if (ec) return failed("cannot list " + objects_dir.string() + ": " + ec.message());
    std::sort(artifacts.begin(), artifacts.end());
  }

  auto writer = backup::Writer::create(a.out, static_cast<uint32_t>(found->version));
  if (!writer) return failed(writer.error().message);
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  Value::Array key_names;
  for (const auto& [name, _] : key_files) key_names.emplace_back(name);
  Value::Map manifest = {
      {"format", Value(static_cast<int64_t>(backup::kFormatVersion))},
      {"layout", Value(found->version)},
      {"created_by", Value(std::string("primaryctl ") + PRIMARY_VERSION)},
      {"host", Value(std::string(host))},
      {"data_dir", Value(data.string())},
      {"redis", Value(a.redis.empty() ? std::string("private") : redacted(url))},
      {"redis_version", Value(snap->redis_version)},
      {"snapshot_ms", Value(snap->taken_ms)},
      {"redis_keys", Value(static_cast<int64_t>(snap->keys.size()))},
      {"reservations", Value(snap->reservations)},
      {field::kPurchased, Value(snap->purchased)},
      {field::kSerial, Value(snap->serial)},
      {"key_files", Value(std::move(key_names))},
  };
  if (auto ok = (*writer)->manifest(Value(std::move(manifest))); !ok) return failed(ok.error().message);
  for (const auto& k : snap->keys)
    if (auto ok = (*writer)->redis_key(k); !ok) return failed(ok.error().message);
  for (const auto& [name, text] : key_files)
    if (auto ok = (*writer)->key_file(name, text); !ok) return failed(ok.error().message);
  size_t stored = 0, skipped = 0;
  uint64_t artifact_bytes = 0;
  for (const auto& path : artifacts) {
    const std::string name = fs::relative(path, objects_dir).string();
    auto ok = (*writer)->artifact(name, path.string(), path.filename().string());
    if (!ok) return failed(ok.error().message);
    if (*ok) {
      ++stored;
      artifact_bytes += fs::file_size(path, ec);
    } else {
      ++skipped;  // its content is not (yet) what its name says
    }
  }
  auto sha = (*writer)->commit();
  if (!sha) return failed(sha.error().message);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  if (ctx.json) {
    Value::Array names;
    for (const auto& [name, _] : key_files) names.emplace_back(name);
    print_json(ctx, Value(Value::Map{
                        {"file", Value(a.out)},
                        {"bytes", Value(static_cast<int64_t>((*writer)->bytes()))},
                        {field::kSha256, Value(*sha)},
                        {"seconds", Value(seconds)},
                        {"redis_keys", Value(static_cast<int64_t>(snap->keys.size()))},
                        {"snapshot_ms", Value(snap->taken_ms)},
                        {"redis_version", Value(snap->redis_version)},
                        {"reservations", Value(snap->reservations)},
                        {field::kPurchased, Value(snap->purchased)},
                        {field::kSerial, Value(snap->serial)},
                        {"key_files", Value(std::move(names))},
                        {"artifacts", Value(static_cast<int64_t>(stored))},
                        {"artifact_bytes", Value(static_cast<int64_t>(artifact_bytes))},
                        {"artifacts_left_out", Value(static_cast<int64_t>(skipped))},
                    }));
    return kOk;
  }
  std::string files;
  for (const auto& [name, _] : key_files) files += (files.empty() ? "" : " ") + name;
  ctx.out << "wrote " << a.out << " (mode 0600): " << (*writer)->bytes() << " bytes ("
          << mib((*writer)->bytes()) << ") in " << std::fixed;
  ctx.out.precision(2);
  ctx.out << seconds << " s\n"
          << "  sha256     " << *sha << "\n"
          << "  redis      " << snap->keys.size() << " keys at " << iso_utc(snap->taken_ms)
          << " (redis " << snap->redis_version << ")\n"
          << "  licenses   " << snap->reservations << " reserved of " << snap->purchased
          << " purchased" << (snap->serial.empty() ? "" : ", serial " + snap->serial) << "\n"
          << "  key files  " << files << "\n"
          << "  artifacts  ";
  if (a.no_artifacts) ctx.out << "left out (--no-artifacts)\n";
  else if (artifacts.empty()) ctx.out << "none\n";
  else
    ctx.out << stored << " files, " << artifact_bytes << " bytes"
            << (skipped ? " (" + std::to_string(skipped) + " left out: content does not match the name)" : "")
            << "\n";
  ctx.out << "The file holds the server's secret keys: keep it as safe as the server itself.\n"
          << "Restore with: primary-server --restore " << a.out << " --data-dir NEW_DIR\n";
  return kOk;
}

}  // namespace

Action declare_backup(CLI::App& sub) {
  auto a = std::make_shared<BackupArgs>();
  sub.add_option("--out", a->out, "Backup file to write (mode 0600; replaced atomically)")->required();
  sub.add_option("--data-dir", a->data_dir,
                 "primary-server's data directory: keys, private Redis, artifacts (default ./var)")
      ->envname("PRIMARY_DATA_DIR");
  sub.add_option("--redis", a->redis, "External Redis URL, when primary-server runs with --redis")
      ->envname("PRIMARY_REDIS");
  sub.add_flag("--no-artifacts", a->no_artifacts,
               "Leave out the updater's downloaded files (they can be fetched again)");
  return [a](Context& ctx) { return backup(ctx, *a); };
}

}  // namespace primary::ctl
