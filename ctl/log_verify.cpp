// primaryctl log verify / log key: checks the activity log's hash chain and
// its signed checkpoints (common/log_chain.hpp), from the stream through the
// admin service or from the rotated files.
#include <fstream>
#include <ostream>

#include "admin/log_file.hpp"
#include "common/crypto.hpp"
#include "common/log_chain.hpp"
#include "common/names.hpp"
#include "common/schema.hpp"
#include "ctl/commands.hpp"

namespace primary::ctl {
namespace {

constexpr const char* kService = "admin";
constexpr int64_t kPage = 1000;

// One page of admin.log with `chain: true`.
Answer chain_page(Context& ctx, const std::string& since, int64_t limit) {
  Value::Map fields{{field::kLimit, Value(limit)}, {field::kChain, Value(true)}};
  if (!since.empty()) fields.emplace_back(field::kSince, Value(since));
  return ask(ctx, kService, opname::kLog, std::move(fields));
}

// Entries in log order into the verifier, remembering the last two.
struct Feed {
  explicit Feed(std::vector<std::string> keys) : verifier(std::move(keys)) {}
  logchain::Verifier verifier;
  size_t count = 0;
  logchain::Entry last;
  std::string before_last_id;
  bool add(logchain::Entry e) {
    ++count;
    before_last_id = std::move(last.id);
    last = e;
    last.data.clear();
    return verifier.add(std::move(e));
  }
};

// The lines of the files, in order; lines without the chain fields are
// skipped before the first chained one (written before the chain existed)
// and count as changed after it. Returns false (reported) when a file is unreadable.
bool read_files(Context& ctx, const std::vector<std::string>& files, Feed& feed, int64_t& unchained) {
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      ctx.err << "primaryctl: cannot read " << path << "\n";
      return false;
    }
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      auto e = admin::parse_chain_line(line);
      if (!e) {
        if (feed.count == 0) {
          ++unchained;
          continue;
        }
        e = logchain::Entry{};
        e->seq = feed.last.seq + 1;
        e->text_differs = true;
      }
      e->where = path + ":" + std::to_string(n);
      if (!feed.add(std::move(*e))) return true;  // the first problem is found
    }
  }
  return true;
}

std::string raw_key(const std::string& text) {
  auto raw = base64url_decode(text);
  return raw && raw->size() == 32 ? *raw : std::string();
}

}  // namespace

int log_key(Context& ctx) {
  Answer a = chain_page(ctx, "", 1);
  if (!a) return a.exit;
  const std::string key = reply_str(a.reply, field::kLogKey);
  if (key.empty()) {
    ctx.err << "primaryctl: the admin worker has no log key (primary-admin --log-key)\n";
    return kServerError;
  }
  if (ctx.json) print_json(ctx, Value(Value::Map{{field::kLogKey, Value(key)}}));
  else ctx.out << key << "\n";
  return kOk;
}

int log_verify(Context& ctx, const LogVerifyArgs& a) {
  std::vector<std::string> keys;
  for (const auto& k : a.keys) {
    std::string raw = raw_key(k);
    if (raw.empty()) {
      ctx.err << "primaryctl: --key '" << k << "': expected a base64url Ed25519 public key (primaryctl log key)\n";
      return kUsage;
    }
    keys.push_back(std::move(raw));
  }
  int64_t unchained = 0;
  std::string written;  // the last id the server wrote to its file
  const bool asked = a.files.empty() || !a.offline;
  // The server's key and file position first (and, without --file, the
  // stream's first page).
  Answer first;
  if (asked) {
    first = chain_page(ctx, "", a.files.empty() ? kPage : 1);
    if (!first) return first.exit;
    if (const std::string k = raw_key(reply_str(first.reply, field::kLogKey)); !k.empty()) keys.push_back(k);
    written = reply_str(first.reply, field::kWritten);
  }
  Feed feed(keys);
  if (!a.files.empty()) {
    if (!read_files(ctx, a.files, feed, unchained)) return kUsage;
  } else {
    std::string since;
    for (Answer page = std::move(first);;) {
      const Value* items = page.reply.find(field::kItems);
      bool going = true;
      if (items && items->is_array())
        for (const auto& item : items->as_array())
          if (auto e = logchain::from_value(item); e && going) going = feed.add(std::move(*e));
      const std::string next = reply_str(page.reply, field::kNext);
      if (!going || next.empty() || next == since) break;
      since = next;
      page = chain_page(ctx, since, kPage);
      if (!page) return page.exit;
    }
  }
  const size_t total = feed.count;
  const logchain::Entry& last = feed.last;
  logchain::Report rep = feed.verifier.finish();
  // Files end where the server says it wrote up to, and the stream goes on
  // from their last entry: anything else is a cut tail.
  if (rep.ok && !a.files.empty() && asked && total > 0) {
    if (!written.empty() && admin::stream_id_less(last.id, written)) {
      rep.ok = false;
      rep.problem = "entry " + std::to_string(total + 1) + " (after " + last.where + ", seq " +
                    std::to_string(last.seq + 1) + "): truncated: the files end at id " + last.id +
                    " but the server wrote up to id " + written;
    } else {
      // The stream's copy of the files' last entry, and the one after it.
      Answer next = chain_page(ctx, feed.before_last_id, 2);
      if (!next) return next.exit;
      const Value* items = next.reply.find(field::kItems);
      auto fail = [&](const std::string& why) {
        rep.ok = false;
        rep.problem = "entry " + std::to_string(total) + " (" + last.where + ", seq " +
                      std::to_string(last.seq) + "): changed: " + why;
      };
      if (items && items->is_array())
        for (const auto& item : items->as_array()) {
          auto e = logchain::from_value(item);
          if (!e) continue;
          if (e->id == last.id && logchain::hash(*e) != rep.last_hash) {
            fail("the stream holds another version of it");
            break;
          }
          if (admin::stream_id_less(last.id, e->id) && (e->seq != last.seq + 1 || e->prev != rep.last_hash)) {
            fail("the stream's next entry (seq " + std::to_string(e->seq) + ") does not follow it");
            break;
          }
        }
    }
  }
  if (ctx.json) {
    Value::Map m{{field::kOk, Value(rep.ok)},
                 {"verified", Value(rep.verified)},
                 {"first_seq", Value(rep.first_seq)},
                 {"last_seq", Value(rep.last_seq)},
                 {"checkpoints", Value(rep.checkpoints)},
                 {"checkpoints_unchecked", Value(rep.checkpoints_unchecked)}};
    if (!rep.ok) m.emplace_back("problem", Value(rep.problem));
    print_json(ctx, Value(std::move(m)));
    return rep.ok ? kOk : kServerError;
  }
  if (!rep.ok) {
    ctx.out << "log verify: FAILED at " << rep.problem << "\n";
    return kServerError;
  }
  ctx.out << "log verify: ok: " << rep.verified << " entries verified";
  if (rep.verified) ctx.out << " (seq " << rep.first_seq << " to " << rep.last_seq << ")";
  ctx.out << ", " << rep.checkpoints << " signed checkpoints\n";
  if (a.files.empty() && rep.first_seq > 1)
    ctx.out << "note: the stream keeps only its newest entries; verified from its oldest, seq " << rep.first_seq << "\n";
  if (unchained) ctx.out << "note: " << unchained << " lines before the chain began were skipped\n";
  if (rep.checkpoints_unchecked)
    ctx.out << "warning: " << rep.checkpoints_unchecked
            << " checkpoints not checked: no log key (give --key, see primaryctl log key)\n";
  if (!a.files.empty() && !asked)
    ctx.out << "note: --offline: entries cut from the end of the last file cannot be told from here\n";
  return kOk;
}

}  // namespace primary::ctl
