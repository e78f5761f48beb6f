#include "server/backup.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "server/lua_scripts.hpp"

namespace primary::backup {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMagic = "PSBACKUP";
constexpr size_t kHeaderSize = 8 + 4;     // magic, format version
constexpr size_t kLayoutSize = 4;         // format 2 on: the data layout version
constexpr size_t kRecordHeader = 1 + 4 + 8;
constexpr size_t kDigestSize = 32;
constexpr size_t kEndSize = kRecordHeader + kDigestSize;
constexpr size_t kMaxName = 4096;
constexpr size_t kChunk = 1 << 20;

Error fail(std::string message) { return Error{Code::Internal, std::move(message)}; }
std::string errno_text() { return std::strerror(errno); }

void put_u32(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
uint64_t get_be(std::string_view bytes) {
  uint64_t v = 0;
  for (unsigned char c : bytes) v = (v << 8) | c;
  return v;
}

std::string record_header(char kind, std::string_view name, uint64_t size) {
  std::string h(1, kind);
  put_u32(h, static_cast<uint32_t>(name.size()));
  h.append(name);
  put_u64(h, size);
  return h;
}

// pread until `n` bytes or EOF/error; the bytes read.
std::string read_at(int fd, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

void fsync_dir_of(const std::string& path) {
  const auto dir = fs::path(path).parent_path();
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// server/lua/snapshot.lua, count_keys.lua; delete_keys.lua goes inside a
// MULTI with EVAL.
const Script& snapshot_script() { return embedded_script<lua::kSnapshot>(); }
const Script& count_script() { return embedded_script<lua::kCountKeys>(); }

std::string pattern() { return std::string(kKeyPrefix) + "*"; }

Error redis_error(const std::string& what, const Result<RedisReply>& r) {
  if (!r) return r.error();
  return Error{transient_error(*r) ? Code::Unavailable : Code::Internal,
               what + ": " + (r->is_error() ? r->str : "unexpected reply")};
}

int64_t int_of(const RedisReply& r) {
  if (r.is_int()) return r.integer;
  if (r.is_str() && !r.str.empty()) {
    char* end = nullptr;
    long long v = std::strtoll(r.str.c_str(), &end, 10);
    if (*end == '\0') return v;
  }
  return 0;
}

}  // namespace

bool safe_file_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

bool safe_relative_path(std::string_view path) {
  if (path.empty() || path.front() == '/') return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (!safe_file_name(path.substr(start, end - start))) return false;
    start = end + 1;
  }
  return true;
}

// ---------------------------------------------------------------- Redis

Result<Snapshot> snapshot(Redis& redis) {
  Snapshot snap;
  auto info = redis.command({"INFO", "server"});
  if (!info || !info->is_str()) return redis_error("INFO", info);
  if (auto pos = info->str.find("redis_version:"); pos != std::string::npos) {
    auto end = info->str.find_first_of("\r\n", pos);
    snap.redis_version = info->str.substr(pos + 14, end - pos - 14);
  }
  auto reply = redis.eval(snapshot_script(), {}, {pattern()});
  if (!reply || !reply->is_array() || reply->elements.size() < 5 ||
      (reply->elements.size() - 5) % 3 != 0)
    return redis_error("snapshot script", reply);
  const auto& e = reply->elements;
  snap.taken_ms = int_of(e[0]) * 1000 + int_of(e[1]) / 1000;
  snap.reservations = int_of(e[2]);
  snap.serial = e[3].is_str() ? e[3].str : "";
  snap.purchased = int_of(e[4]);
  snap.keys.reserve((e.size() - 5) / 3);
  for (size_t i = 5; i + 2 < e.size(); i += 3) {
    if (!e[i].is_str() || !e[i + 1].is_str()) return fail("snapshot script: unexpected reply");
    const int64_t at = e[i + 2].is_int() ? e[i + 2].integer : -1;  // -1: no expiry
    snap.keys.push_back(RedisKey{e[i].str, at > 0 ? static_cast<uint64_t>(at) : 0, e[i + 1].str});
  }
  return snap;
}

Result<int64_t> count_product_keys(Redis& redis) {
  auto reply = redis.eval(count_script(), {}, {pattern()});
  if (!reply || !reply->is_int()) return redis_error("counting keys", reply);
  return reply->integer;
}

Result<size_t> restore(Redis& redis, const std::vector<RedisKey>& keys, bool replace) {
  std::vector<Redis::Argv> commands;
  commands.reserve(keys.size() + 3);
  commands.push_back({"MULTI"});
  if (replace) commands.push_back({"EVAL", std::string(lua::kDeleteKeys), "0", pattern()});
  const size_t first_key = commands.size();
  for (const auto& k : keys) {
    if (k.expires_at_ms > 0)
      commands.push_back({"RESTORE", k.name, std::to_string(k.expires_at_ms), k.dump, "ABSTTL"});
    else
      commands.push_back({"RESTORE", k.name, "0", k.dump});
  }
  commands.push_back({"EXEC"});
  auto replies = redis.pipeline(commands);
  if (!replies) return replies.error();
  // A command refused while queued aborts the whole EXEC: nothing applied.
  for (size_t i = 0; i + 1 < replies->size(); ++i)
    if ((*replies)[i].is_error())
      return Error{Code::Internal, commands[i][0] + (i >= first_key ? " " + commands[i][1] : "") +
                                       ": " + (*replies)[i].str};
  const RedisReply& exec = replies->back();
  if (!exec.is_array() || exec.elements.size() != commands.size() - 2)
    return Error{Code::Internal, "EXEC: " + (exec.is_error() ? exec.str : "unexpected reply")};
  std::string what;
  std::vector<std::string> undo = {"DEL"};  // transactions do not roll back
  for (size_t i = 0; i < exec.elements.size(); ++i) {
    const size_t cmd = i + 1;  // MULTI is not in EXEC's reply
    const bool is_key = cmd >= first_key;
    if (!exec.elements[i].is_error()) {
      if (is_key) undo.push_back(keys[cmd - first_key].name);
      continue;
    }
    if (what.empty())
      what = (is_key ? "RESTORE " + keys[cmd - first_key].name : std::string("deleting the old keys")) +
             ": " + exec.elements[i].str;
  }
  if (what.empty()) return keys.size();
  if (undo.size() > 1) {
    auto r = redis.command(undo);
    if (!r || r->is_error()) what += " (and removing the keys restored meanwhile failed)";
  }
  return Error{Code::Internal, what};
}

// ---------------------------------------------------------------- Writer

struct Writer::Hash {
  crypto_hash_sha256_state state;
};

Result<std::unique_ptr<Writer>> Writer::create(const std::string& path, uint32_t layout) {
  crypto_init();
  std::unique_ptr<Writer> w(new Writer());
  w->path_ = path;
  w->tmp_ = path + ".tmp." + std::to_string(::getpid());
  w->fd_ = ::open(w->tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (w->fd_ < 0) return fail("cannot write " + w->tmp_ + ": " + errno_text());
  ::fchmod(w->fd_, 0600);
  w->hash_ = std::make_unique<Hash>();
  crypto_hash_sha256_init(&w->hash_->state);
  std::string header(kMagic);
  put_u32(header, kFormatVersion);
  put_u32(header, layout);
  if (auto ok = w->put(header); !ok) return ok.error();
  return w;
}

Writer::~Writer() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

Status Writer::put(std::string_view bytes) {
  crypto_hash_sha256_update(&hash_->state, reinterpret_cast<const unsigned char*>(bytes.data()),
                            bytes.size());
  if (!write_all(fd_, bytes)) return fail("cannot write " + tmp_ + ": " + errno_text());
  written_ += bytes.size();
  return {};
}

Status Writer::record(char kind, std::string_view name, std::string_view data) {
  if (name.size() > kMaxName) return fail("name too long for a backup record: " + std::string(name.substr(0, 64)));
  std::string out = record_header(kind, name, data.size());
  if (data.size() < kChunk) {
    out.append(data);
    return put(out);
  }
  if (auto ok = put(out); !ok) return ok;
  return put(data);
}

Status Writer::manifest(const Value& map) { return record('M', "manifest", pack(map)); }

Status Writer::redis_key(const RedisKey& key) {
  std::string data;
  data.reserve(8 + key.dump.size());
  put_u64(data, key.expires_at_ms);
  data.append(key.dump);
  return record('R', key.name, data);
}

Status Writer::key_file(const std::string& name, std::string_view data) {
  if (!safe_file_name(name)) return fail("bad key file name: " + name);
  return record('K', name, data);
}

Result<bool> Writer::artifact(const std::string& name, const std::string& source,
                              const std::string& expect_sha256) {
  if (!safe_relative_path(name)) return fail("bad artifact path: " + name);
  Fd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return fail("cannot read " + source + ": " + errno_text());
  struct stat st {};
  if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) return fail(source + " is not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (!expect_sha256.empty()) {
    // Check the content first, so a file being written is left out whole.
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    uint64_t done = 0;
    while (done < size) {
      std::string chunk = read_at(in.get(), done, static_cast<size_t>(std::min<uint64_t>(kChunk, size - done)));
      if (chunk.empty()) return false;
      crypto_hash_sha256_update(&h, reinterpret_cast<const unsigned char*>(chunk.data()), chunk.size());
      done += chunk.size();
    }
    std::string digest(crypto_hash_sha256_BYTES, '\0');
    crypto_hash_sha256_final(&h, reinterpret_cast<unsigned char*>(digest.data()));
    if (hex_encode(digest) != expect_sha256) return false;
  }
  if (auto ok = put(record_header('A', name, size)); !ok) return ok.error();
  uint64_t done = 0;
  while (done < size) {
    std::string chunk = read_at(in.get(), done, static_cast<size_t>(std::min<uint64_t>(kChunk, size - done)));
    // The file shrank under us: the record's length is already written.
    if (chunk.empty()) return fail(source + " changed while being copied");
    if (auto ok = put(chunk); !ok) return ok.error();
    done += chunk.size();
  }
  return true;
}

Result<std::string> Writer::commit() {
  if (auto ok = put(record_header('Z', "", kDigestSize)); !ok) return ok.error();
  std::string digest(kDigestSize, '\0');
  crypto_hash_sha256_final(&hash_->state, reinterpret_cast<unsigned char*>(digest.data()));
  if (!write_all(fd_, digest)) return fail("cannot write " + tmp_ + ": " + errno_text());
  written_ += digest.size();
  if (::fsync(fd_) != 0) return fail("cannot write " + tmp_ + ": fsync: " + errno_text());
  ::close(std::exchange(fd_, -1));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    return fail("cannot rename " + tmp_ + " to " + path_ + ": " + errno_text());
  committed_ = true;
  fsync_dir_of(path_);
  return hex_encode(digest);
}

// ---------------------------------------------------------------- reading

Result<Contents> read(const std::string& path) {
  crypto_init();
  auto bad = [&](const std::string& why) { return Error{Code::BadRequest, "backup " + path + ": " + why}; };
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return bad("cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return bad("not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);

  const std::string header = read_at(fd.get(), 0, kHeaderSize);
  if (header.size() < kMagic.size() || std::string_view(header).substr(0, kMagic.size()) != kMagic)
    return bad("not a Primary Server backup (no PSBACKUP header)");
  if (header.size() < kHeaderSize) return bad("truncated (" + std::to_string(size) + " bytes)");
  Contents c;
  c.version = static_cast<uint32_t>(get_be(std::string_view(header).substr(8, 4)));
  if (c.version == 0 || c.version > kFormatVersion)
    return bad("format version " + std::to_string(c.version) + " is not one this program reads (1.." +
               std::to_string(kFormatVersion) + ")");
  const uint64_t records_at = kHeaderSize + (c.version >= 2 ? kLayoutSize : 0);
  if (size < records_at + kEndSize) return bad("truncated (" + std::to_string(size) + " bytes)");
  if (c.version >= 2) c.layout = static_cast<uint32_t>(get_be(read_at(fd.get(), kHeaderSize, kLayoutSize)));

  // The end record sits at a fixed distance from the end: a cut file has
  // something else there.
  const uint64_t end_at = size - kEndSize;
  const std::string end = read_at(fd.get(), end_at, kEndSize);
  if (end.size() != kEndSize || end.substr(0, kRecordHeader) != record_header('Z', "", kDigestSize))
    return bad("truncated or damaged (no end record)");
  crypto_hash_sha256_state h;
  crypto_hash_sha256_init(&h);
  for (uint64_t off = 0; off < size - kDigestSize;) {
    const std::string chunk =
        read_at(fd.get(), off, static_cast<size_t>(std::min<uint64_t>(kChunk, size - kDigestSize - off)));
    if (chunk.empty()) return bad("read error: " + errno_text());
    crypto_hash_sha256_update(&h, reinterpret_cast<const unsigned char*>(chunk.data()), chunk.size());
    off += chunk.size();
  }
  std::string digest(kDigestSize, '\0');
  crypto_hash_sha256_final(&h, reinterpret_cast<unsigned char*>(digest.data()));
  if (sodium_memcmp(digest.data(), end.data() + kRecordHeader, kDigestSize) != 0)
    return bad("checksum mismatch (the file is damaged)");
  c.sha256 = hex_encode(digest);
  c.bytes = size;

  // The checksum holds, so the records are as written; still, never trust a
  // length past the end or a name that leaves its directory.
  uint64_t pos = records_at;
  bool have_manifest = false;
  while (pos < end_at) {
    if (end_at - pos < kRecordHeader) return bad("damaged record at offset " + std::to_string(pos));
    const std::string kind_len = read_at(fd.get(), pos, 5);
    const char kind = kind_len[0];
    const uint64_t name_len = get_be(std::string_view(kind_len).substr(1, 4));
    if (name_len > kMaxName || end_at - pos < kRecordHeader + name_len)
      return bad("damaged record at offset " + std::to_string(pos));
    const std::string name = read_at(fd.get(), pos + 5, static_cast<size_t>(name_len));
    const uint64_t data_len = get_be(read_at(fd.get(), pos + 5 + name_len, 8));
    const uint64_t data_at = pos + kRecordHeader + name_len;
    if (data_len > end_at - data_at) return bad("damaged record at offset " + std::to_string(pos));
    if (!have_manifest && kind != 'M') return bad("no manifest");
    if (kind == 'A') {
      if (!safe_relative_path(name)) return bad("artifact with an unsafe path");
      c.artifacts.push_back(Artifact{name, data_at, data_len});
    } else {
      std::string data = read_at(fd.get(), data_at, static_cast<size_t>(data_len));
      if (data.size() != data_len) return bad("read error: " + errno_text());
      switch (kind) {
        case 'M': {
          auto m = unpack_map(data, CodecLimits{kMaxName * 256, 16, 100000});
          if (!m || have_manifest) return bad("bad manifest");
          c.manifest = std::move(*m);
          have_manifest = true;
          break;
        }
        case 'R':
          if (data.size() < 8 || name.empty()) return bad("bad Redis key record");
          c.redis.push_back(RedisKey{name, get_be(std::string_view(data).substr(0, 8)), data.substr(8)});
          break;
        case 'K':
          if (!safe_file_name(name)) return bad("key file with an unsafe name");
          c.key_files.emplace_back(name, std::move(data));
          break;
        default:
          return bad("unknown record kind at offset " + std::to_string(pos));
      }
    }
    pos = data_at + data_len;
  }
  if (!have_manifest) return bad("no manifest");
  return c;
}

Status extract_artifact(const std::string& path, const Artifact& a, const std::string& dest) {
  Fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return fail("cannot open " + path + ": " + errno_text());
  std::error_code ec;
  fs::create_directories(fs::path(dest).parent_path(), ec);
  const std::string tmp = dest + ".tmp." + std::to_string(::getpid());
  Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (out.get() < 0) return fail("cannot write " + tmp + ": " + errno_text());
  for (uint64_t done = 0; done < a.size;) {
    const std::string chunk =
        read_at(in.get(), a.offset + done, static_cast<size_t>(std::min<uint64_t>(kChunk, a.size - done)));
    if (chunk.empty() || !write_all(out.get(), chunk)) {
      ::unlink(tmp.c_str());
      return fail("cannot copy artifact " + a.name + " to " + dest + ": " + errno_text());
    }
    done += chunk.size();
  }
  if (::fsync(out.get()) != 0 || ::close(out.release()) != 0 || ::rename(tmp.c_str(), dest.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return fail("cannot write " + dest + ": " + errno_text());
  }
  return {};
}

}  // namespace primary::backup
