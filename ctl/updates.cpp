// primaryctl updates: the release catalogue (update.control) and downloads
// (update.fetch), for admins.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/release.hpp"
#include "common/schema.hpp"
#include "common/tokens.hpp"
#include "ctl/commands.hpp"

namespace primary::ctl {
namespace {

constexpr const char* kControl = svc::kUpdateControl;
constexpr int64_t kChunk = 1024 * 1024;
constexpr size_t kWindow = 8;  // chunk requests in flight

struct UpdatesArgs {
  std::string which;  // list, sync, import, approve, hold, download
  std::string component, version, path, out, vendor_key;
  int percent = 100;
  bool no_wait = false;
  int wait_s = 600;
};

std::string size_text(int64_t bytes) {
  char buf[32];
  if (bytes >= (int64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1 << 30));
  else if (bytes >= (1 << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  else if (bytes >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(bytes) / 1024);
  else std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  return buf;
}

const Value::Array& items(const Value& reply) {
  static const Value::Array none;
  const Value* v = reply.find(field::kItems);
  return v && v->is_array() ? v->as_array() : none;
}

int list(Context& ctx) {
  Answer a = ask(ctx, kControl, opname::kReleases);
  return print_reply(ctx, a, [&](const Value& r) {
    std::vector<std::vector<std::string>> rows = {
        {"COMPONENT", "VERSION", "CHANNEL", "STATE", "ROLLOUT", "SIZE", "STORED", "SHA256"}};
    for (const Value& i : items(r))
      rows.push_back({reply_str(i, field::kComponent), reply_str(i, field::kVersion), reply_str(i, field::kChannel), reply_str(i, field::kState),
                      reply_str(i, field::kState) == "approved" ? std::to_string(reply_int(i, field::kRollout, 0)) + "%" : "-",
                      size_text(reply_int(i, field::kSize, 0)),
                      i.find(field::kStored) && i.find(field::kStored)->is_bool() && i.find(field::kStored)->as_bool() ? "yes" : "no",
                      reply_str(i, field::kSha256).substr(0, 12)});
    print_table(ctx.out, rows);
    if (const Value* feed = r.find(field::kFeed); feed && feed->is_map() && reply_int(*feed, field::kIssued, 0))
      ctx.out << "feed: issued " << reply_int(*feed, field::kIssued, 0) << " (Unix ms), synced "
              << reply_int(*feed, field::kSyncedAt, 0) << ", from " << reply_str(*feed, field::kSource) << "\n";
    if (const Value* sync = r.find(field::kSync); sync && sync->is_map() && !reply_str(*sync, field::kJob).empty())
      ctx.out << "last " << reply_str(*sync, "kind") << ": " << reply_str(*sync, field::kState) << " "
              << reply_str(*sync, field::kResult)
              << (reply_str(*sync, field::kMessage).empty() ? "" : ": " + reply_str(*sync, field::kMessage)) << "\n";
  });
}

// Starts a sync or import and, unless --no-wait, polls until its job is done.
int run_job(Context& ctx, const UpdatesArgs& a, const std::string& op, Value::Map fields) {
  Answer started = ask(ctx, kControl, op, std::move(fields));
  if (!started) return started.exit;
  const std::string job = reply_str(started.reply, field::kJob);
  if (a.no_wait) {
    return print_reply(ctx, started, [&](const Value&) { ctx.out << op << " started: job " << job << "\n"; });
  }
  const int64_t deadline = ctx.host.now_ms() + int64_t{a.wait_s} * 1000;
  while (ctx.host.now_ms() < deadline) {
    ctx.host.sleep(std::chrono::milliseconds(250));
    Answer r = ask(ctx, kControl, opname::kReleases);
    if (!r) return r.exit;
    const Value* sync = r.reply.find(field::kSync);
    if (!sync || !sync->is_map() || reply_str(*sync, field::kJob) != job || reply_str(*sync, field::kState) != "done") continue;
    const std::string result = reply_str(*sync, field::kResult);
    if (ctx.json) {
      print_json(ctx, *sync);
    } else {
      ctx.out << op << " " << result << ": " << reply_int(*sync, field::kAdded, 0) << " added, "
              << reply_int(*sync, field::kFailed, 0) << " failed"
              << (reply_str(*sync, field::kMessage).empty() ? "" : " (" + reply_str(*sync, field::kMessage) + ")") << "\n";
    }
    if (result == field::kOk) return kOk;
    ctx.err << "error: " << (result == "refused" ? "REFUSED" : "PARTIAL") << ": " << reply_str(*sync, field::kMessage)
            << "\n";
    return kServerError;
  }
  ctx.err << "error: TIMEOUT: job " << job << " still running after " << a.wait_s << " s (see `primaryctl log`)\n";
  return kUnreachable;
}

int set_state(Context& ctx, const UpdatesArgs& a, bool approve) {
  Value::Map f = {{field::kComponent, Value(a.component)}, {field::kVersion, Value(a.version)}};
  if (approve) f.emplace_back(field::kRollout, Value(static_cast<int64_t>(a.percent)));
  Answer r = ask(ctx, kControl, approve ? "approve" : "hold", std::move(f));
  return print_reply(ctx, r, [&](const Value& v) {
    ctx.out << reply_str(v, field::kComponent) << " " << reply_str(v, field::kVersion) << ": " << reply_str(v, field::kState);
    if (approve) ctx.out << " for " << reply_int(v, field::kRollout, 0) << "% of computers";
    ctx.out << "\n";
  });
}

void progress(Context& ctx, int64_t done, int64_t total, bool tty) {
  if (!tty || ctx.json) return;
  const int width = 40;
  const int filled = total ? static_cast<int>(static_cast<double>(done) / static_cast<double>(total) * width) : width;
  std::cerr << "\r[" << std::string(static_cast<size_t>(filled), '#')
            << std::string(static_cast<size_t>(width - filled), ' ') << "] " << size_text(done) << " / "
            << size_text(total) << std::flush;
  if (done >= total) std::cerr << "\n";
}

int download(Context& ctx, const UpdatesArgs& a) {
  Answer list = ask(ctx, kControl, opname::kReleases);
  if (!list) return list.exit;
  const Value* found = nullptr;
  for (const Value& i : items(list.reply))
    if (reply_str(i, field::kComponent) == a.component && reply_str(i, field::kVersion) == a.version) found = &i;
  if (!found) {
    ctx.err << "error: NOT_FOUND: no release " << a.component << " " << a.version << "\n";
    return kServerError;
  }
  Release rel;
  rel.component = a.component;
  rel.version = a.version;
  rel.channel = reply_str(*found, field::kChannel);
  rel.size = reply_int(*found, field::kSize, 0);
  rel.sha256 = reply_str(*found, field::kSha256);
  rel.signature = reply_str(*found, field::kSignature);
  if (!a.vendor_key.empty()) {
    auto key = read_key_file(a.vendor_key, 32, false);
    if (!key) {
      ctx.err << "primaryctl: " << key.error().message << "\n";
      return kUsage;
    }
    if (!verify_release(rel, *key)) {
      ctx.err << "error: BAD_SIGNATURE: " << a.component << " " << a.version << " is not signed by " << a.vendor_key
              << "\n";
      return kServerError;
    }
  }
  const std::string part = a.out + ".part";
  struct stat st {};
  int64_t have = ::stat(part.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
  if (have > rel.size) {
    ::truncate(part.c_str(), 0);
    have = 0;
  }
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    ctx.err << "primaryctl: cannot write " << part << ": " << std::strerror(errno) << "\n";
    return kUsage;
  }
  const bool tty = ::isatty(2);
  const int64_t resumed = have;
  int exit = kOk;
  // Windows of kWindow chunk requests, pipelined (fetch is idempotent).
  while (have < rel.size && exit == kOk) {
    std::vector<std::string> bodies;
    std::vector<int64_t> offsets;
    for (int64_t off = have; off < rel.size && bodies.size() < kWindow; off += kChunk) {
      bodies.push_back(encode_request(opname::kFetch, {{field::kSha256, Value(rel.sha256)},
                                                {field::kOffset, Value(off)},
                                                {field::kLength, Value(std::min(kChunk, rel.size - off))},
                                                {field::kRid, Value(static_cast<int64_t>(bodies.size()))}}));
      offsets.push_back(off);
    }
    std::vector<Result<std::string>> replies;
    if (ctx.send_many) replies = ctx.send_many(field::kUpdate, bodies);
    else
      for (const auto& b : bodies) replies.push_back(ctx.send(field::kUpdate, b));
    for (size_t i = 0; i < bodies.size() && exit == kOk; ++i) {
      if (i >= replies.size() || !replies[i]) {
        exit = report_transport_error(ctx, i < replies.size() ? replies[i].error() : Error{Code::Unavailable, "no reply"});
        break;
      }
      auto reply = unpack_map(*replies[i]);
      if (!reply || !reply_ok(*reply)) {
        exit = reply ? report_error_reply(ctx, *reply) : kServerError;
        break;
      }
      const Value* data = reply->find(field::kData);
      if (!data || data->kind() != Value::Kind::Bin || reply_int(*reply, field::kOffset, 0) != offsets[i] ||
          static_cast<int64_t>(data->as_bin().bytes.size()) != std::min(kChunk, rel.size - offsets[i])) {
        ctx.err << "error: INTERNAL: the server's chunk at " << offsets[i] << " does not match the release\n";
        exit = kServerError;
        break;
      }
      const std::string& bytes = data->as_bin().bytes;
      if (::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
        ctx.err << "primaryctl: cannot write " << part << ": " << std::strerror(errno) << "\n";
        exit = kServerError;
        break;
      }
      have += static_cast<int64_t>(bytes.size());
      progress(ctx, have, rel.size, tty);
    }
  }
  ::fsync(fd);
  ::close(fd);
  if (exit != kOk) {
    ctx.err << "primaryctl: kept " << size_text(have) << " in " << part << "; run again to resume\n";
    return exit;
  }
  auto hash = sha256_file_hex(part);
  if (!hash || *hash != rel.sha256) {
    ::unlink(part.c_str());
    ctx.err << "error: BAD_HASH: the download does not match the release's sha256; discarded\n";
    return kServerError;
  }
  if (::rename(part.c_str(), a.out.c_str()) != 0) {
    ctx.err << "primaryctl: cannot rename to " << a.out << ": " << std::strerror(errno) << "\n";
    return kServerError;
  }
  Value result(Value::Map{{field::kComponent, Value(rel.component)},
                          {field::kVersion, Value(rel.version)},
                          {"file", Value(a.out)},
                          {field::kSize, Value(rel.size)},
                          {field::kSha256, Value(rel.sha256)},
                          {"resumed_from", Value(resumed)},
                          {"signature_checked", Value(!a.vendor_key.empty())}});
  if (ctx.json) print_json(ctx, result);
  else
    ctx.out << a.out << ": " << rel.component << " " << rel.version << ", " << size_text(rel.size) << ", sha256 "
            << rel.sha256 << (a.vendor_key.empty() ? "" : ", vendor signature verified") << "\n";
  return kOk;
}

}  // namespace

Action declare_updates(CLI::App& sub) {
  auto a = std::make_shared<UpdatesArgs>();
  sub.require_subcommand(1);
  auto* ls = sub.add_subcommand("list", "Releases with state, rollout and whether this server stores them");
  auto* sync = sub.add_subcommand(field::kSync, "Fetch the vendor feed now; waits for the result unless --no-wait");
  auto* import = sub.add_subcommand("import", "Import an offline bundle (a path on the updater's host)");
  import->add_option("BUNDLE", a->path, "Bundle file (absolute path on the server's host)")->required();
  for (auto* s : {sync, import}) {
    s->add_flag("--no-wait", a->no_wait, "Print the job id and return at once");
    s->add_option("--wait-s", a->wait_s, "Longest wait for the result (default 600)")->check(CLI::Range(1, 86400));
  }
  auto* approve = sub.add_subcommand("approve", "Offer a release to Clients (all, or --percent of them)");
  auto* hold = sub.add_subcommand("hold", "Stop offering a release");
  auto* dl = sub.add_subcommand("download", "Download a release to --out FILE (resumes FILE.part)");
  for (auto* s : {approve, hold, dl}) {
    s->add_option("COMPONENT", a->component, "Component name")->required();
    s->add_option("VERSION", a->version, "Version")->required();
  }
  approve->add_option("--percent", a->percent, "Rollout: share of computers offered it, by a stable hash of the name")
      ->check(CLI::Range(0, 100));
  dl->add_option("--out", a->out, "Destination file")->required();
  dl->add_option("--vendor-key", a->vendor_key, "Vendor public key file: also check the vendor's signature");
  return [a, ls, sync, import, approve, hold, dl](Context& ctx) {
    if (ls->parsed()) return list(ctx);
    if (sync->parsed()) return run_job(ctx, *a, field::kSync, {});
    if (import->parsed()) {
      std::string path = a->path;
      if (!path.empty() && path[0] != '/') {
        char cwd[4096];
        if (::getcwd(cwd, sizeof cwd)) path = std::string(cwd) + "/" + path;
      }
      return run_job(ctx, *a, "import", {{field::kPath, Value(path)}});
    }
    if (approve->parsed()) return set_state(ctx, *a, true);
    if (hold->parsed()) return set_state(ctx, *a, false);
    if (dl->parsed()) return download(ctx, *a);
    return int{kUsage};
  };
}

}  // namespace primary::ctl
