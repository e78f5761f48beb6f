#include "common/release.hpp"

#include <algorithm>
#include <cctype>

#include "common/codec.hpp"
#include "common/crypto.hpp"
#include "common/names.hpp"

namespace primary {
namespace {

constexpr std::string_view kReleaseTag = "primary-release-v1";
constexpr std::string_view kFeedTag = "primary-feed-v1";
constexpr std::string_view kFeedFormat = "primary-feed";

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<uint64_t> numeric_part(std::string_view s) {
  if (!all_digits(s) || (s.size() > 1 && s[0] == '0') || s.size() > 18) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

bool ident_chars(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
  });
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

// Component and channel names: 1 to 64 of A-Z a-z 0-9 . _ -
bool valid_label(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

const std::string* str_field(const Value& m, std::string_view k) {
  const Value* v = m.find(k);
  return v && v->is_str() ? &v->as_str() : nullptr;
}

}  // namespace

std::optional<SemVer> parse_semver(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  if (auto plus = text.find('+'); plus != std::string_view::npos) {
    for (auto id : split(text.substr(plus + 1), '.'))
      if (!ident_chars(id)) return std::nullopt;
    text = text.substr(0, plus);
  }
  std::string_view core = text;
  SemVer v;
  if (auto dash = text.find('-'); dash != std::string_view::npos) {
    core = text.substr(0, dash);
    for (auto id : split(text.substr(dash + 1), '.')) {
      if (!ident_chars(id)) return std::nullopt;
      if (all_digits(id) && id.size() > 1 && id[0] == '0') return std::nullopt;
      v.pre.emplace_back(id);
    }
  }
  auto parts = split(core, '.');
  if (parts.size() != 3) return std::nullopt;
  auto a = numeric_part(parts[0]), b = numeric_part(parts[1]), c = numeric_part(parts[2]);
  if (!a || !b || !c) return std::nullopt;
  v.major = *a;
  v.minor = *b;
  v.patch = *c;
  return v;
}

int compare_semver(const SemVer& a, const SemVer& b) {
  auto cmp = [](uint64_t x, uint64_t y) { return x < y ? -1 : (x > y ? 1 : 0); };
  if (int c = cmp(a.major, b.major)) return c;
  if (int c = cmp(a.minor, b.minor)) return c;
  if (int c = cmp(a.patch, b.patch)) return c;
  // A version without pre-release identifiers ranks above one with them.
  if (a.pre.empty() || b.pre.empty()) return a.pre.empty() == b.pre.empty() ? 0 : (a.pre.empty() ? 1 : -1);
  for (size_t i = 0; i < std::min(a.pre.size(), b.pre.size()); ++i) {
    const std::string &x = a.pre[i], &y = b.pre[i];
    const bool xn = all_digits(x), yn = all_digits(y);
    if (xn && yn) {
      if (int c = cmp(std::stoull(x), std::stoull(y))) return c;
    } else if (xn != yn) {
      return xn ? -1 : 1;  // numeric identifiers rank below alphanumeric ones
    } else if (x != y) {
      return x < y ? -1 : 1;
    }
  }
  return cmp(a.pre.size(), b.pre.size());
}

bool valid_sha256_hex(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string release_message(const Release& r) {
  std::string m(kReleaseTag);
  for (const std::string* part : {&r.component, &r.version, &r.channel}) {
    m += '\n';
    m += *part;
  }
  m += '\n' + std::to_string(r.size) + '\n' + r.sha256;
  return m;
}

void sign_release(Release& r, std::string_view vendor_secret) {
  r.signature = base64url_encode(sign_detached(release_message(r), vendor_secret));
}

bool verify_release(const Release& r, std::string_view vendor_public) {
  auto sig = base64url_decode(r.signature);
  return sig && sig->size() == 64 && vendor_public.size() == 32 &&
         sign_verify(release_message(r), *sig, vendor_public);
}

std::optional<std::string> release_problem(const Release& r) {
  if (!valid_label(r.component)) return "component '" + r.component + "' is not 1-64 of A-Z a-z 0-9 . _ -";
  if (!parse_semver(r.version)) return "version '" + r.version + "' is not a semantic version (1.2.3)";
  if (!valid_label(r.channel)) return "channel '" + r.channel + "' is not 1-64 of A-Z a-z 0-9 . _ -";
  if (r.size <= 0 || r.size > kMaxReleaseSize) return "size " + std::to_string(r.size) + " out of range";
  if (!valid_sha256_hex(r.sha256)) return "sha256 is not 64 lowercase hex digits";
  if (r.file.empty() || r.file.size() > 255 || r.file == "." || r.file == ".." ||
      r.file.find('/') != std::string::npos || r.file.find('\0') != std::string::npos)
    return "file name '" + r.file + "' is not a plain file name";
  if (!r.url.empty() && r.url.rfind("http://", 0) != 0 && r.url.rfind("https://", 0) != 0 &&
      r.url.rfind("file://", 0) != 0)
    return "url must be http://, https:// or file://";
  if (r.notes.size() > 4096) return "notes longer than 4096 bytes";
  return std::nullopt;
}

Value release_offer(const Release& r) {
  Value v = release_to_value(r);
  auto& m = v.as_map();
  m.erase(std::remove_if(m.begin(), m.end(),
                         [](const auto& kv) { return kv.first == "file" || kv.first == field::kUrl; }),
          m.end());
  return v;
}

Value release_to_value(const Release& r) {
  Value v(Value::Map{});
  v.set(field::kComponent, Value(r.component));
  v.set(field::kVersion, Value(r.version));
  v.set(field::kChannel, Value(r.channel));
  v.set(field::kSize, Value(r.size));
  v.set(field::kSha256, Value(r.sha256));
  v.set("file", Value(r.file));
  if (!r.url.empty()) v.set(field::kUrl, Value(r.url));
  if (!r.notes.empty()) v.set(field::kNotes, Value(r.notes));
  v.set(field::kSignature, Value(r.signature));
  return v;
}

Result<Release> release_from_value(const Value& v) {
  if (!v.is_map()) return Error{Code::BadRequest, "release entry is not a map"};
  Release r;
  const std::pair<const char*, std::string*> strings[] = {
      {field::kComponent, &r.component}, {field::kVersion, &r.version}, {field::kChannel, &r.channel},
      {field::kSha256, &r.sha256},       {"file", &r.file},       {field::kSignature, &r.signature}};
  for (auto [name, out] : strings) {
    const std::string* s = str_field(v, name);
    if (!s) return Error{Code::BadRequest, std::string("release entry without '") + name + "'"};
    *out = *s;
  }
  if (const std::string* s = str_field(v, field::kUrl)) r.url = *s;
  if (const std::string* s = str_field(v, field::kNotes)) r.notes = *s;
  const Value* size = v.find(field::kSize);
  if (!size || !size->is_int()) return Error{Code::BadRequest, "release entry without integer 'size'"};
  r.size = size->as_int();
  if (auto problem = release_problem(r)) return Error{Code::BadRequest, *problem};
  return r;
}

std::string make_feed(const Manifest& m, std::string_view vendor_secret) {
  Value::Array list;
  for (const auto& r : m.releases) list.push_back(release_to_value(r));
  Value manifest(Value::Map{});
  manifest.set(field::kIssued, Value(m.issued));
  manifest.set(field::kExpires, Value(m.expires));
  manifest.set("releases", Value(std::move(list)));
  const std::string bytes = pack(manifest);
  Value feed(Value::Map{});
  feed.set("format", Value(std::string(kFeedFormat)));
  feed.set("manifest", Value(Bin{bytes}));
  feed.set(field::kSignature, Value(Bin{sign_detached(std::string(kFeedTag) + bytes, vendor_secret)}));
  return pack(feed);
}

Result<Manifest> open_feed(std::string_view bytes, std::string_view vendor_public, int64_t now_ms) {
  auto bad = [](std::string why) { return Error{Code::BadRequest, std::move(why)}; };
  CodecLimits limits;
  limits.max_body = 64 * 1024 * 1024;
  auto outer = unpack_map(bytes, limits);
  if (!outer) return bad("feed is not a MessagePack map: " + outer.error().message);
  const std::string* format = str_field(*outer, "format");
  if (!format || *format != kFeedFormat) return bad("not a primary feed (format field)");
  const Value* manifest = outer->find("manifest");
  const Value* signature = outer->find(field::kSignature);
  if (!manifest || manifest->kind() != Value::Kind::Bin || !signature ||
      signature->kind() != Value::Kind::Bin)
    return bad("feed without manifest or signature");
  const std::string& mbytes = manifest->as_bin().bytes;
  if (vendor_public.size() != 32 || signature->as_bin().bytes.size() != 64 ||
      !sign_verify(std::string(kFeedTag) + mbytes, signature->as_bin().bytes, vendor_public))
    return bad("feed signature does not verify with the vendor key");
  auto m = unpack_map(mbytes, limits);
  if (!m) return bad("manifest is not a MessagePack map: " + m.error().message);
  Manifest out;
  const Value* issued = m->find(field::kIssued);
  const Value* expires = m->find(field::kExpires);
  const Value* list = m->find("releases");
  if (!issued || !issued->is_int() || !expires || !expires->is_int() || !list || !list->is_array())
    return bad("manifest needs integer issued and expires and a releases array");
  out.issued = issued->as_int();
  out.expires = expires->as_int();
  if (out.expires <= now_ms) return bad("feed expired at " + std::to_string(out.expires) + " (Unix ms)");
  for (const Value& e : list->as_array()) {
    auto r = release_from_value(e);
    if (!r) return bad("release: " + r.error().message);
    if (!verify_release(*r, vendor_public))
      return bad("release " + r->component + " " + r->version + ": signature does not verify");
    for (const Release& seen : out.releases)
      if (seen.component == r->component && seen.version == r->version)
        return bad("release " + r->component + " " + r->version + " listed twice");
    out.releases.push_back(std::move(*r));
  }
  return out;
}

int rollout_group(std::string_view computer) {
  std::string upper(computer);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string h = sha256(upper);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(h[static_cast<size_t>(i)]);
  return static_cast<int>(v % 100);
}

}  // namespace primary
