#include "admin/log_file.hpp"

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/spdlog.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string_view>
#include <utility>
#include <vector>

#include "admin/lua_scripts.hpp"
#include "common/names.hpp"
#include "common/crypto.hpp"
#include "common/events.hpp"
#include "common/keys.hpp"

namespace primary::admin {
namespace {

// Redis keys of the file writer (next to the activity log stream).
constexpr const char* kLock = keys::kLogFileLock;
constexpr const char* kLast = keys::kLogFileLast;

// Records the last event id written while holding the lock:
// admin/lua/log_file_commit.lua.
const Script& commit_script() { return embedded_script<lua::kLogFileCommit>(); }

std::pair<uint64_t, uint64_t> parse_id(const std::string& id) {
  const auto dash = id.find('-');
  const uint64_t ms = std::strtoull(id.c_str(), nullptr, 10);
  const uint64_t seq = dash == std::string::npos ? 0 : std::strtoull(id.c_str() + dash + 1, nullptr, 10);
  return {ms, seq};
}

std::string iso_time(int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  std::array<char, 40> buf;
  const size_t n = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buf.data(), n) + fmt::format(".{:03}Z", ((ms % 1000) + 1000) % 1000);
}

bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (unsigned char c : s)
    if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c == 0x7f) return true;
  return false;
}

std::string quote_text(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < ' ' || c == 0x7f) out += fmt::format("\\x{:02x}", c);
        else out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string text_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Str: return needs_quotes(v.as_str()) ? quote_text(v.as_str()) : v.as_str();
    case Value::Kind::Int: return std::to_string(v.as_int());
    case Value::Kind::UInt: return std::to_string(v.as_uint());
    case Value::Kind::Float: return fmt::format("{}", v.as_float());
    case Value::Kind::Bool: return v.as_bool() ? "true" : "false";
    case Value::Kind::Nil: return "-";
    default: {
      const std::string json = to_json(v);
      return needs_quotes(json) ? quote_text(json) : json;
    }
  }
}

// Fields an admin looks for first; the others follow by name.
int rank(const std::string& key) {
  static const std::array<std::string_view, 5> first = {field::kComputer, field::kSerial, field::kLicense, field::kReason, field::kPeer};
  const auto it = std::find(first.begin(), first.end(), key);
  return static_cast<int>(it - first.begin());
}

}  // namespace

std::string format_event_line(const Value& event) {
  const Value* ts = event.find(field::kTs);
  const Value* type = event.find(field::kType);
  const Value* id = event.find(field::kId);
  std::string line = iso_time(ts && ts->is_int() ? ts->as_int() : 0);
  line += ' ';
  line += type && type->is_str() ? type->as_str() : std::string("event");
  line += " id=";
  line += id && id->is_str() ? id->as_str() : std::string("-");
  if (!event.is_map()) return line;
  std::vector<const std::pair<std::string, Value>*> fields;
  for (const auto& kv : event.as_map())
    if (kv.first != field::kId && kv.first != field::kTs && kv.first != field::kType) fields.push_back(&kv);
  std::stable_sort(fields.begin(), fields.end(), [](const auto* a, const auto* b) {
    const int ra = rank(a->first), rb = rank(b->first);
    return ra != rb ? ra < rb : a->first < b->first;
  });
  for (const auto* kv : fields) {
    line += ' ';
    line += needs_quotes(kv->first) ? quote_text(kv->first) : kv->first;
    line += '=';
    line += text_of(kv->second);
  }
  return line;
}

std::string format_chain_line(const logchain::Entry& e) {
  RedisReply collected;
  collected.type = RedisReply::Type::Array;
  for (const std::string* s : {&e.id, &e.type}) {
    RedisReply r;
    r.type = RedisReply::Type::Str;
    r.str = *s;
    collected.elements.push_back(std::move(r));
  }
  RedisReply ts;
  ts.type = RedisReply::Type::Int;
  ts.integer = e.ts;
  collected.elements.push_back(std::move(ts));
  RedisReply data;
  data.type = RedisReply::Type::Str;
  data.str = e.data;
  collected.elements.push_back(std::move(data));
  auto event = event_from_entry(collected);
  std::string line = event ? format_event_line(*event) : iso_time(e.ts) + " " + e.type + " id=" + e.id;
  line += fmt::format(" {}={} {}={} raw={}", field::kSeq, e.seq, field::kPrev, e.prev, base64url_encode(e.data));
  return line;
}

std::optional<logchain::Entry> parse_chain_line(const std::string& line) {
  const auto raw = line.rfind(" raw=");
  if (raw == std::string::npos) return std::nullopt;
  const auto prev = line.rfind(" prev=", raw);
  if (prev == std::string::npos || raw - prev - 6 != 40) return std::nullopt;
  const auto seq = line.rfind(" seq=", prev);
  if (seq == std::string::npos) return std::nullopt;
  logchain::Entry e;
  auto data = base64url_decode(std::string_view(line).substr(raw + 5));
  const std::string seq_text = line.substr(seq + 5, prev - seq - 5);
  if (!data || seq_text.empty() || seq_text.size() > 18 || seq_text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  e.data = std::move(*data);
  e.seq = std::stoll(seq_text);
  e.prev = line.substr(prev + 6, 40);
  e.id = event_id_of_line(line);
  // "<YYYY-MM-DDTHH:MM:SS.mmmZ> <type> id=..."
  const auto sp = line.find(' ');
  const auto sp2 = sp == std::string::npos ? sp : line.find(' ', sp + 1);
  if (sp2 != std::string::npos) e.type = line.substr(sp + 1, sp2 - sp - 1);
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(line.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &ms) == 7) {
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    e.ts = static_cast<int64_t>(::timegm(&tm)) * 1000 + ms;
  }
  e.text_differs = e.id.empty() || format_chain_line(e) != line;
  return e;
}

std::string event_id_of_line(const std::string& line) {
  // "<time> <type> id=<id> ..."
  const auto a = line.find(' ');
  if (a == std::string::npos) return {};
  const auto b = line.find(' ', a + 1);
  if (b == std::string::npos || line.compare(b + 1, 3, "id=") != 0) return {};
  const auto end = line.find(' ', b + 4);
  std::string id = line.substr(b + 4, end == std::string::npos ? std::string::npos : end - b - 4);
  if (id.empty() || id.find_first_not_of("0123456789-") != std::string::npos) return {};
  return id;
}

bool stream_id_less(const std::string& a, const std::string& b) { return parse_id(a) < parse_id(b); }

ActivityLogFile::ActivityLogFile(Redis& redis, LogFileConfig config)
    : redis_(redis), config_(std::move(config)), lock_(redis, kLock, config_.owner, config_.lock_ms) {}

ActivityLogFile::~ActivityLogFile() { close_sink(); }

bool ActivityLogFile::hold_lock() {
  auto held = lock_.hold();
  if (!held) {
    if (sink_) spdlog::warn("activity log file: cannot renew the lock; stopped writing");
    close_sink();
    return false;
  }
  if (*held == ExpiringLock::Hold::Refused) {
    close_sink();
    return false;
  }
  if (*held == ExpiringLock::Hold::Renewed && sink_) return true;
  // Just taken (or held again after trouble): continue after the later of
  // what Redis and the file itself say was written last.
  close_sink();
  trim_pending_ = true;  // the file's tail read below, then likely a backlog
  auto last = redis_.command({"GET", kLast});
  if (!last) return false;
  last_ = last->is_str() ? last->str : std::string();
  const std::string in_file = last_line_id();
  if (!in_file.empty() && (last_.empty() || stream_id_less(last_, in_file))) last_ = in_file;
  if (!open_sink()) return false;
  spdlog::info("writing the activity log to {} after event {}", config_.path, last_.empty() ? "(start)" : last_);
  return true;
}

bool ActivityLogFile::open_sink() {
  try {
    auto sink = std::make_shared<spdlog::sinks::rotating_file_sink_st>(config_.path, config_.max_size,
                                                                        config_.max_files);
    auto logger = std::make_shared<spdlog::logger>("activity", std::move(sink));
    logger->set_pattern("%v");
    logger->set_level(spdlog::level::info);
    sink_ = std::move(logger);
    return true;
  } catch (const std::exception& e) {
    if (std::chrono::steady_clock::now() >= quiet_until_) {
      spdlog::warn("activity log file {}: {}", config_.path, e.what());
      quiet_until_ = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    }
    return false;
  }
}

void ActivityLogFile::close_sink() {
  if (!sink_) return;
  try {
    sink_->flush();
  } catch (const std::exception&) {
  }
  sink_.reset();
}

std::string ActivityLogFile::last_line_id() const {
  // The current file, or the newest rotated one when the current is empty.
  for (size_t index = 0; index <= 1; ++index) {
    const std::string file =
        index == 0 ? config_.path : spdlog::sinks::rotating_file_sink_st::calc_filename(config_.path, index);
    std::ifstream in(file, std::ios::binary | std::ios::ate);
    if (!in) continue;
    const std::streamoff size = in.tellg();
    if (size <= 0) continue;
    const std::streamoff from = std::max<std::streamoff>(0, size - 65536);
    std::string tail(static_cast<size_t>(size - from), '\0');
    in.seekg(from);
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    while (!tail.empty() && tail.back() == '\n') tail.pop_back();
    const auto nl = tail.rfind('\n');
    return event_id_of_line(nl == std::string::npos ? tail : tail.substr(nl + 1));
  }
  return {};
}

int64_t ActivityLogFile::poll() {
  const int64_t written = write_events();
  return_free_heap();
  return written;
}

void ActivityLogFile::return_free_heap() {
  if (!trim_pending_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now < trimmed_at_ + std::chrono::seconds(5)) return;  // under a steady backlog: not every poll
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
  trimmed_at_ = now;
  trim_pending_ = false;
}

int64_t ActivityLogFile::write_events() {
  if (!hold_lock()) return 0;
  const auto deadline = std::chrono::steady_clock::now() + config_.budget;
  int64_t written = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = redis_.command({"XREAD", "COUNT", std::to_string(config_.batch), "STREAMS", kEventStream,
                             last_.empty() ? std::string("0-0") : last_});
    if (!r || r->is_error()) {
      if (std::chrono::steady_clock::now() >= quiet_until_) {
        spdlog::warn("activity log file: cannot read the activity log: {}",
                     r ? r->str : r.error().message);
        quiet_until_ = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      }
      break;
    }
    if (!r->is_array() || r->elements.empty() || r->elements[0].elements.size() != 2) break;
    const auto& entries = r->elements[0].elements[1].elements;
    if (entries.empty()) break;
    std::string id;
    try {
      for (const auto& entry : entries) {
        if (entry.elements.size() != 2) continue;
        id = entry.elements[0].str;
        if (auto chained = logchain::entry_of_stream(entry)) {
          sink_->info(format_chain_line(*chained));
          continue;
        }
        // Fields in the order XADD wrote them: type, ts, data.
        RedisReply collected;
        collected.type = RedisReply::Type::Array;
        collected.elements.push_back(entry.elements[0]);
        const auto& f = entry.elements[1].elements;
        for (const char* name : {field::kType, field::kTs, field::kData})
          for (size_t k = 0; k + 1 < f.size(); k += 2)
            if (f[k].str == name) collected.elements.push_back(f[k + 1]);
        auto event = event_from_entry(collected);
        if (!event) {
          spdlog::warn("activity log file: entry {} is not an event; skipped", id);
          continue;
        }
        sink_->info(format_event_line(*event));
      }
      sink_->flush();
    } catch (const std::exception& e) {
      // The lines up to here may be in the file; its last line tells the next
      // attempt where to continue.
      spdlog::warn("activity log file {}: {}", config_.path, e.what());
      close_sink();
      break;
    }
    if (id.empty()) break;
    auto c = redis_.eval(commit_script(), {kLock, kLast}, {config_.owner, id});
    last_ = id;
    written += static_cast<int64_t>(entries.size());
    if (!c || !c->is_int() || c->integer != 1) {
      // Lost the lock (or Redis): stop; whoever writes next starts from the
      // file's last line, which is this batch's.
      close_sink();
      break;
    }
    if (entries.size() < config_.batch) break;
    trim_pending_ = true;  // a full batch: catching up
  }
  return written;
}

void ActivityLogFile::release() {
  close_sink();
  (void)lock_.release();
}

}  // namespace primary::admin
