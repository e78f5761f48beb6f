// Vendor releases (PROTOCOL.md section 5) and the signed feed that lists them.
//
// A release is signed on its own, over {component, version, channel, size,
// sha256}, so a Client can check what it downloaded against the vendor key it
// ships with, whatever server handed it over. The feed signs the whole list
// once more, with its issue time and expiry, so a server can refuse a replayed
// older list (rollback) or a stale one (expired). Formats: docs/protocol.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.hpp"
#include "common/value.hpp"

namespace primary {

// ---- semantic versions (semver.org 2.0.0 precedence) ----
struct SemVer {
  uint64_t major = 0, minor = 0, patch = 0;
  std::vector<std::string> pre;  // dot-separated pre-release identifiers
};
std::optional<SemVer> parse_semver(std::string_view text);
// <0, 0, >0 as a has lower, equal or higher precedence than b (build metadata ignored).
int compare_semver(const SemVer& a, const SemVer& b);

// ---- releases ----
struct Release {
  std::string component, version, channel = "stable";
  int64_t size = 0;
  std::string sha256;     // 64 lowercase hex digits
  std::string file;       // file name in the release folder / bundle
  std::string url;        // optional absolute URL; default: next to the feed
  std::string notes;
  std::string signature;  // base64url Ed25519 over release_message()
};

// Largest artifact a feed may list (bytes).
inline constexpr int64_t kMaxReleaseSize = int64_t{16} << 30;

// The exact bytes a release signature covers.
std::string release_message(const Release& r);
void sign_release(Release& r, std::string_view vendor_secret);
bool verify_release(const Release& r, std::string_view vendor_public);
// Shape checks: component/channel names, semver version, hex hash, size, file name.
std::optional<std::string> release_problem(const Release& r);

// A release as a map: {component, version, channel, size, sha256, file,
// url?, notes?, signature}, as the catalogue and the feed hold it.
Value release_to_value(const Release& r);
// What a client is offered of a release: release_to_value() without where
// the updater got it from (file, url).
Value release_offer(const Release& r);
Result<Release> release_from_value(const Value& v);

// ---- the feed ----
struct Manifest {
  int64_t issued = 0;   // Unix ms
  int64_t expires = 0;  // Unix ms
  std::vector<Release> releases;
};

// The feed file: MessagePack {format: "primary-feed", manifest: bin,
// signature: bin}, the signature over a domain tag plus the manifest bytes.
std::string make_feed(const Manifest& m, std::string_view vendor_secret);
// Verifies the feed signature, the manifest's shape and every release's own
// signature, and that it has not expired at `now_ms`. The error says why not.
Result<Manifest> open_feed(std::string_view bytes, std::string_view vendor_public, int64_t now_ms);

// A computer's rollout group, 0..99: a stable hash of its upper-cased name.
int rollout_group(std::string_view computer);

// True for 64 lowercase hex digits.
bool valid_sha256_hex(std::string_view s);

}  // namespace primary
