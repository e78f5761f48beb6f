#include "common/log_chain.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/keys.hpp"
#include "common/names.hpp"

namespace primary::logchain {
namespace {

std::optional<int64_t> number(std::string_view s) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  return std::stoll(std::string(s));
}

const std::string* str_of(const Value& m, std::string_view key) {
  const Value* v = m.find(key);
  return v && v->is_str() ? &v->as_str() : nullptr;
}

std::optional<int64_t> int_of(const Value& m, std::string_view key) {
  const Value* v = m.find(key);
  if (!v || !v->is_int()) return std::nullopt;
  return v->as_int();
}

std::string label(const std::vector<Entry>& e, size_t i) {
  return fmt::format("entry {} ({}, seq {})", i + 1, e[i].where, e[i].seq);
}

}  // namespace

std::string hash(const Entry& e) {
  std::string bytes;
  bytes.reserve(e.id.size() + e.type.size() + e.prev.size() + e.data.size() + 48);
  bytes += e.id;
  bytes += '\n';
  bytes += e.type;
  bytes += '\n';
  bytes += std::to_string(e.ts);
  bytes += '\n';
  bytes += std::to_string(e.seq);
  bytes += '\n';
  bytes += e.prev;
  bytes += '\n';
  bytes += e.data;
  return sha1_hex(bytes);
}

std::optional<Entry> entry_of_stream(const RedisReply& r) {
  if (!r.is_array() || r.elements.size() != 2 || !r.elements[0].is_str() || !r.elements[1].is_array())
    return std::nullopt;
  Entry e;
  e.id = r.elements[0].str;
  e.where = "stream";
  bool type = false, ts = false, data = false, seq = false, prev = false;
  const auto& f = r.elements[1].elements;
  for (size_t k = 0; k + 1 < f.size(); k += 2) {
    const std::string& name = f[k].str;
    const std::string& value = f[k + 1].str;
    if (name == field::kType) e.type = value, type = true;
    else if (name == field::kData) e.data = value, data = true;
    else if (name == field::kPrev) e.prev = value, prev = true;
    else if (name == field::kTs) {
      auto n = number(value);
      if (n) e.ts = *n, ts = true;
    } else if (name == field::kSeq) {
      auto n = number(value);
      if (n) e.seq = *n, seq = true;
    }
  }
  if (!(type && ts && data && seq && prev)) return std::nullopt;
  return e;
}

std::optional<Head> read_head(Redis& redis, std::string* error) {
  auto r = redis.command({"XREVRANGE", keys::kEvents, "+", "-", "COUNT", "1"});
  if (!r || r->is_error()) {
    if (error) *error = r ? r->str : r.error().message;
    return std::nullopt;
  }
  Head head;
  if (r->is_array() && !r->elements.empty())
    if (auto e = entry_of_stream(r->elements[0])) head = Head{e->seq, hash(*e)};
  return head;
}

Value to_value(const Entry& e) {
  return Value(Value::Map{{field::kId, Value(e.id)},
                          {field::kType, Value(e.type)},
                          {field::kTs, Value(e.ts)},
                          {field::kSeq, Value(e.seq)},
                          {field::kPrev, Value(e.prev)},
                          {field::kData, Value(Bin{e.data})}});
}

std::optional<Entry> from_value(const Value& v) {
  const std::string* id = str_of(v, field::kId);
  const std::string* type = str_of(v, field::kType);
  const std::string* prev = str_of(v, field::kPrev);
  auto ts = int_of(v, field::kTs);
  auto seq = int_of(v, field::kSeq);
  const Value* data = v.find(field::kData);
  if (!id || !type || !prev || !ts || !seq || !data || data->kind() != Value::Kind::Bin) return std::nullopt;
  return Entry{*id, *type, *ts, *seq, *prev, data->as_bin().bytes, "stream", false};
}

std::string checkpoint_message(int64_t count, std::string_view head, int64_t ts) {
  return fmt::format("primary-log-checkpoint-v1\n{}\n{}\n{}", count, head, ts);
}

Report verify(const std::vector<Entry>& e, const std::vector<std::string>& keys) {
  Report rep;
  const size_t n = e.size();
  if (n == 0) return rep;
  std::vector<std::string> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = hash(e[i]);
  auto links = [&](size_t a, size_t b) { return e[b].seq == e[a].seq + 1 && e[b].prev == h[a]; };
  auto fail = [&](size_t i, std::string what) {
    rep.ok = false;
    rep.problem = label(e, i) + ": " + std::move(what);
    return rep;
  };
  // A checkpoint whose own hash the next entry (or the end) confirmed.
  auto checkpoint = [&](size_t i) -> std::optional<std::string> {
    if (e[i].type != event::kLogCheckpoint) return std::nullopt;
    auto fields = unpack_value(e[i].data);
    const std::string* head = fields ? str_of(*fields, field::kHead) : nullptr;
    const std::string* key = fields ? str_of(*fields, field::kLogKey) : nullptr;
    const std::string* sig = fields ? str_of(*fields, field::kSignature) : nullptr;
    auto count = fields ? int_of(*fields, field::kCount) : std::nullopt;
    if (!head || !key || !sig || !count) return "forged checkpoint: missing count, head, log_key or signature";
    if (keys.empty()) {
      ++rep.checkpoints_unchecked;
    } else {
      auto raw_key = base64url_decode(*key);
      auto raw_sig = base64url_decode(*sig);
      if (!raw_key || std::find(keys.begin(), keys.end(), *raw_key) == keys.end())
        return "forged checkpoint: signed by " + *key + ", not a trusted log key";
      if (!raw_sig || !sign_verify(checkpoint_message(*count, *head, e[i].ts), *raw_sig, *raw_key))
        return "forged checkpoint: its signature does not verify";
      ++rep.checkpoints;
    }
    if (*count >= e[i].seq) return fmt::format("forged checkpoint: it counts {} entries, beyond itself", *count);
    const int64_t back = e[i].seq - *count;  // links up to i are verified: seq steps by 1
    if (*count >= e[0].seq && h[i - static_cast<size_t>(back)] != *head)
      return fmt::format("forged checkpoint: it names head {} for seq {}, whose hash is {}", *head, *count,
                         h[i - static_cast<size_t>(back)]);
    return std::nullopt;
  };

  if (e[0].text_differs) return fail(0, "changed: its text is not what its recorded data reads");
  if (e[0].seq == 1 && e[0].prev != kGenesis) return fail(0, "changed: the first entry must follow the genesis hash");
  for (size_t i = 1; i < n; ++i) {
    if (e[i].text_differs) return fail(i, "changed: its text is not what its recorded data reads");
    if (!links(i - 1, i)) {
      const int64_t want = e[i - 1].seq + 1;
      const bool next = i + 1 < n;
      if (e[i].seq == want) {
        // Consecutive numbers, broken hash: the entry before was changed,
        // unless this one's successor does not vouch for it either.
        if (next && !links(i, i + 1)) return fail(i, "changed: its prev is not the hash of the entry before");
        return fail(i - 1, "changed: its hash is not the prev recorded by the next entry");
      }
      // In the place of seq `want` (the next one is want + 1, or this is the
      // last and links by hash): its seq was edited.
      if ((next && e[i + 1].seq == want + 1) || (!next && e[i].prev == h[i - 1]))
        return fail(i, fmt::format("changed: its seq {} should be {}", e[i].seq, want));
      if (e[i].seq > want) {
        if (next && e[i + 1].seq == want && e[i + 1].prev == h[i - 1])
          return fail(i, fmt::format("reordered: seq {} comes before seq {}", e[i].seq, e[i + 1].seq));
        return fail(i, e[i].seq - want == 1 ? fmt::format("removed: seq {} is missing before this entry", want)
                                            : fmt::format("removed: seq {} to {} are missing before this entry",
                                                          want, e[i].seq - 1));
      }
      // Numbered at or before the entry before it.
      if (next && links(i - 1, i + 1)) return fail(i, "inserted: the next entry links to the one before it");
      if (i >= 2 && links(i - 2, i)) return fail(i - 1, "inserted: the next entry links to the one before it");
      return fail(i, fmt::format("reordered: seq {} comes after seq {}", e[i].seq, e[i - 1].seq));
    }
    if (auto bad = checkpoint(i - 1)) return fail(i - 1, *bad);
  }
  if (auto bad = checkpoint(n - 1)) return fail(n - 1, *bad);
  rep.verified = static_cast<int64_t>(n);
  rep.first_seq = e.front().seq;
  rep.last_seq = e.back().seq;
  rep.last_id = e.back().id;
  rep.last_hash = h.back();
  return rep;
}

}  // namespace primary::logchain
