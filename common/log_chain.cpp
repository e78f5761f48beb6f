#include "common/log_chain.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

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

Redis::Argv newest_entry_command() { return {"XREVRANGE", keys::kEvents, "+", "-", "COUNT", "1"}; }

std::optional<Head> head_of(const Result<RedisReply>& r, std::string* error) {
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

Verifier::Verifier(std::vector<std::string> keys) : keys_(std::move(keys)) {}

const Entry& Verifier::at(size_t i) const { return window_[i - (count_ - window_.size())]; }

std::string_view Verifier::hash_at(size_t i) const { return std::string_view(hashes_).substr(i * 40, 40); }

bool Verifier::links(size_t a, size_t b) const { return at(b).seq == at(a).seq + 1 && at(b).prev == hash_at(a); }

bool Verifier::fail(size_t i, std::string what) {
  rep_.ok = false;
  rep_.problem = fmt::format("entry {} ({}, seq {}): {}", i + 1, at(i).where, at(i).seq, what);
  return false;
}

bool Verifier::add(Entry e) {
  if (!rep_.ok) return false;
  hashes_ += hash(e);
  window_.push_back(std::move(e));
  ++count_;
  if (window_.size() > 4) window_.pop_front();
  if (count_ == 1) {
    first_seq_ = at(0).seq;
    if (at(0).text_differs) return fail(0, "changed: its text is not what its recorded data reads");
    if (at(0).seq == 1 && at(0).prev != kGenesis) return fail(0, "changed: the first entry must follow the genesis hash");
  }
  // The link into entry i is judged once entry i + 1 is known.
  while (rep_.ok && next_ + 1 < count_) step(next_++, true);
  return rep_.ok;
}

Report Verifier::finish() {
  while (rep_.ok && next_ < count_) step(next_++, false);
  if (rep_.ok && count_ > 0 && !checkpoint(count_ - 1)) return rep_;
  if (!rep_.ok) return rep_;
  rep_.verified = static_cast<int64_t>(count_);
  if (count_ > 0) {
    rep_.first_seq = first_seq_;
    rep_.last_seq = at(count_ - 1).seq;
    rep_.last_id = at(count_ - 1).id;
    rep_.last_hash = std::string(hash_at(count_ - 1));
  }
  return rep_;
}

// Entry i against the one before it (i >= 1); `next`: entry i + 1 exists.
void Verifier::step(size_t i, bool next) {
  if (at(i).text_differs) {
    fail(i, "changed: its text is not what its recorded data reads");
    return;
  }
  if (links(i - 1, i)) {
    checkpoint(i - 1);  // its own hash is confirmed by entry i
    return;
  }
  const int64_t want = at(i - 1).seq + 1;
  if (at(i).seq == want) {
    // Consecutive numbers, broken hash: the entry before was changed,
    // unless this one's successor does not vouch for it either.
    if (next && !links(i, i + 1)) fail(i, "changed: its prev is not the hash of the entry before");
    else fail(i - 1, "changed: its hash is not the prev recorded by the next entry");
    return;
  }
  // In the place of seq `want` (the next one is want + 1, or this is the
  // last and links by hash): its seq was edited.
  if ((next && at(i + 1).seq == want + 1) || (!next && at(i).prev == hash_at(i - 1))) {
    fail(i, fmt::format("changed: its seq {} should be {}", at(i).seq, want));
    return;
  }
  if (at(i).seq > want) {
    if (next && at(i + 1).seq == want && at(i + 1).prev == hash_at(i - 1))
      fail(i, fmt::format("reordered: seq {} comes before seq {}", at(i).seq, at(i + 1).seq));
    else if (at(i).seq - want == 1)
      fail(i, fmt::format("removed: seq {} is missing before this entry", want));
    else
      fail(i, fmt::format("removed: seq {} to {} are missing before this entry", want, at(i).seq - 1));
    return;
  }
  // Numbered at or before the entry before it.
  if (next && links(i - 1, i + 1)) fail(i, "inserted: the next entry links to the one before it");
  else if (i >= 2 && links(i - 2, i)) fail(i - 1, "inserted: the next entry links to the one before it");
  else fail(i, fmt::format("reordered: seq {} comes after seq {}", at(i).seq, at(i - 1).seq));
}

// A checkpoint whose own hash the next entry (or the end) confirmed.
bool Verifier::checkpoint(size_t i) {
  const Entry& e = at(i);
  if (e.type != event::kLogCheckpoint) return true;
  auto fields = unpack_value(e.data);
  const std::string* head = fields ? str_of(*fields, field::kHead) : nullptr;
  const std::string* key = fields ? str_of(*fields, field::kLogKey) : nullptr;
  const std::string* sig = fields ? str_of(*fields, field::kSignature) : nullptr;
  auto count = fields ? int_of(*fields, field::kCount) : std::nullopt;
  if (!head || !key || !sig || !count) return fail(i, "forged checkpoint: missing count, head, log_key or signature");
  if (keys_.empty()) {
    ++rep_.checkpoints_unchecked;
  } else {
    auto raw_key = base64url_decode(*key);
    auto raw_sig = base64url_decode(*sig);
    if (!raw_key || std::find(keys_.begin(), keys_.end(), *raw_key) == keys_.end())
      return fail(i, "forged checkpoint: signed by " + *key + ", not a trusted log key");
    if (!raw_sig || !sign_verify(checkpoint_message(*count, *head, e.ts), *raw_sig, *raw_key))
      return fail(i, "forged checkpoint: its signature does not verify");
    ++rep_.checkpoints;
  }
  if (*count >= e.seq) return fail(i, fmt::format("forged checkpoint: it counts {} entries, beyond itself", *count));
  if (*count < first_seq_) return true;  // before the first entry read: nothing to compare
  // The links up to i are verified, so seq steps by 1 from the first entry.
  const std::string_view named = hash_at(static_cast<size_t>(*count - first_seq_));
  if (named != *head)
    return fail(i, fmt::format("forged checkpoint: it names head {} for seq {}, whose hash is {}", *head, *count, named));
  return true;
}

Report verify(const std::vector<Entry>& entries, const std::vector<std::string>& keys) {
  Verifier v(keys);
  for (const auto& e : entries)
    if (!v.add(e)) break;
  return v.finish();
}

}  // namespace primary::logchain
