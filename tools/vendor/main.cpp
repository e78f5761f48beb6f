// primary-vendor: the vendor's side. Makes the vendor signing key, issues
// unlock codes and seat codes (retire, transfer) for a server's registration
// code, and signs release feeds and offline bundles from a folder of release
// files.
#include <sys/stat.h>
#include <toml++/toml.h>

#include <chrono>
#include <iostream>

#include "common/config.hpp"
#include "common/crypto.hpp"
#include "common/process.hpp"
#include "common/names.hpp"
#include "common/release.hpp"
#include "common/schema.hpp"
#include "common/tokens.hpp"
#include "updater/bundle.hpp"
#include "updater/store.hpp"

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Reads DIR/releases.toml ([[release]] tables: component, version, file,
// channel?, notes?, url?) and fills in size, SHA-256 and each signature.
primary::Result<primary::Manifest> collect(const std::string& dir, const std::string& secret,
                                           const std::string& base_url) {
  using namespace primary;
  const std::string index = dir + "/releases.toml";
  toml::table t;
  try {
    t = toml::parse_file(index);
  } catch (const toml::parse_error& e) {
    return Error{Code::BadRequest, index + ": " + std::string(e.description())};
  }
  const toml::array* list = t["release"].as_array();
  if (!list || list->empty()) return Error{Code::BadRequest, index + ": no [[release]] entries"};
  Manifest m;
  for (const auto& node : *list) {
    const toml::table* e = node.as_table();
    if (!e) return Error{Code::BadRequest, index + ": [[release]] entries must be tables"};
    Release r;
    r.component = (*e)["component"].value_or(std::string());
    r.version = (*e)["version"].value_or(std::string());
    r.channel = (*e)["channel"].value_or(std::string("stable"));
    r.file = (*e)["file"].value_or(std::string());
    r.notes = (*e)["notes"].value_or(std::string());
    r.url = (*e)["url"].value_or(std::string());
    if (r.url.empty() && !base_url.empty()) r.url = updater::sibling_url(base_url + "/x", r.file);
    struct stat st {};
    const std::string path = dir + "/" + r.file;
    if (r.file.empty() || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      return Error{Code::BadRequest, index + ": release " + r.component + " " + r.version +
                                         ": file '" + r.file + "' not found in " + dir};
    r.size = static_cast<int64_t>(st.st_size);
    auto hash = sha256_file_hex(path);
    if (!hash) return Error{Code::BadRequest, "cannot read " + path};
    r.sha256 = *hash;
    if (auto problem = release_problem(r)) return Error{Code::BadRequest, index + ": " + *problem};
    sign_release(r, secret);
    m.releases.push_back(std::move(r));
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace primary;
  Config cfg("primary-vendor", "Vendor tool: signing keys and unlock codes");
  CLI::App& app = cfg.app();
  app.require_subcommand(1);

  std::string out_dir;
  auto* keygen = app.add_subcommand("keygen", "Write DIR/vendor.key (secret, 0600) and DIR/vendor.pub");
  keygen->add_option("--out", out_dir, "Directory for the key files")->required();

  std::string key_file, registration;
  int64_t licenses = 0, issued = 0;
  auto* unlock = app.add_subcommand("unlock", "Print an unlock code for a registration code");
  unlock->add_option("--key", key_file, "Vendor secret key file (vendor.key)")->required();
  unlock->add_option("--registration", registration, "The server's registration code")->required();
  unlock->add_option("--licenses", licenses, "Number of Client licenses (the new total)")
      ->required()
      ->check(CLI::Range(int64_t{0}, int64_t{100000000}));
  unlock->add_option("--issued", issued, "Issue time, Unix ms (default: now)");

  // Seat codes: retire a reservation, or transfer it to a new name.
  std::string computer, license, to;
  int64_t valid_days = 30;
  auto* retire = app.add_subcommand("retire", "Print a code that frees one computer's reserved license");
  auto* transfer = app.add_subcommand("transfer", "Print a code that moves one computer's seat to a new name");
  for (auto* sub : {retire, transfer}) {
    sub->add_option("--key", key_file, "Vendor secret key file (vendor.key)")->required();
    sub->add_option("--registration", registration, "The server's registration code")->required();
    sub->add_option("--computer", computer, "The computer holding the seat")->required();
    sub->add_option("--license", license, "The license it holds now (primaryctl transfer-request prints it)")
        ->required();
    sub->add_option("--issued", issued, "Issue time, Unix ms (default: now)");
    sub->add_option("--valid-days", valid_days, "Days the server accepts the code")
        ->check(CLI::Range(int64_t{1}, int64_t{365}));
  }
  transfer->add_option("--to", to, "The new computer name")->required();
  retire->footer("Example: primary-vendor retire --key keys/vendor.key --registration PS1-SN-1-... "
                 "--computer PC-7 --license 8dYJ0p2fQm3eZ9VbqkT1wA");

  std::string release_dir, out_file, base_url;
  int64_t expires_days = 30;
  auto* sign_feed = app.add_subcommand("sign-feed", "Sign a feed of the releases listed in DIR/releases.toml");
  auto* bundle = app.add_subcommand("bundle", "Write an offline bundle (signed feed plus files, tar)");
  for (auto* sub : {sign_feed, bundle}) {
    sub->add_option("--key", key_file, "Vendor secret key file (vendor.key)")->required();
    sub->add_option("--dir", release_dir, "Folder with releases.toml and the release files")->required();
    sub->add_option("--out", out_file, "Output file")->required();
    sub->add_option("--issued", issued, "Issue time, Unix ms (default: now); must grow from feed to feed");
    sub->add_option("--expires-days", expires_days, "Days until servers refuse this feed as stale")
        ->check(CLI::Range(int64_t{1}, int64_t{3650}));
  }
  sign_feed->add_option("--base-url", base_url, "Where the files will be served (default: next to the feed)");
  sign_feed->footer("Example: primary-vendor sign-feed --key keys/vendor.key --dir releases --out releases/feed");
  bundle->footer("Example: primary-vendor bundle --key keys/vendor.key --dir releases --out updates.bundle");

  cfg.parse(argc, argv);

  if (sign_feed->parsed() || bundle->parsed()) {
    auto secret = read_key_file(key_file, 64, true);
    if (!secret) cfg.fail(secret.error().message);
    auto m = collect(release_dir, *secret, base_url);
    if (!m) cfg.fail(m.error().message);
    m->issued = issued ? issued : now_ms();
    m->expires = m->issued + expires_days * 86400 * 1000;
    const std::string feed = make_feed(*m, *secret);
    if (sign_feed->parsed()) {
      if (!write_file_atomic(out_file, feed, 0644)) cfg.fail("cannot write " + out_file);
    } else {
      std::vector<std::pair<std::string, std::string>> files;
      for (const auto& r : m->releases) files.emplace_back(r.file, release_dir + "/" + r.file);
      if (auto written = updater::write_bundle(out_file, feed, files); !written) cfg.fail(written.error().message);
    }
    for (const auto& r : m->releases)
      std::cout << r.component << " " << r.version << " " << r.channel << " " << r.size << " " << r.sha256 << "\n";
    return 0;
  }

  if (retire->parsed() || transfer->parsed()) {
    auto secret = read_key_file(key_file, 64, true);
    if (!secret) cfg.fail(secret.error().message);
    if (!registration_serial(registration)) cfg.fail("not a registration code: '" + registration + "'");
    if (!valid_computer_name(computer)) cfg.fail("--computer: expected 1 to 63 of A-Z a-z 0-9 - _ .");
    if (license.empty() || license.size() > 128) cfg.fail("--license: expected the computer's license");
    SeatCode code;
    code.kind = retire->parsed() ? seat::kRetire : seat::kTransfer;
    code.registration = registration;
    code.computer = normalize_computer_name(computer);
    code.license = license;
    if (transfer->parsed()) {
      if (!valid_computer_name(to)) cfg.fail("--to: expected 1 to 63 of A-Z a-z 0-9 - _ .");
      code.to = normalize_computer_name(to);
      if (code.to == code.computer) cfg.fail("--to: the new name is the computer's own");
    }
    code.issued = issued ? issued : now_ms();
    code.expires = code.issued + valid_days * 86400 * 1000;
    code.id = random_token(12);
    std::cout << make_seat_code(code, *secret) << "\n";
    return 0;
  }

  if (keygen->parsed()) {
    ::mkdir(out_dir.c_str(), 0700);
    const SignKeypair kp = sign_keypair();
    if (auto written = write_key_file(out_dir + "/vendor.key", kp.secret_key, 0600); !written)
      cfg.fail(written.error().message);
    if (auto written = write_key_file(out_dir + "/vendor.pub", kp.public_key, 0644); !written)
      cfg.fail(written.error().message);
    std::cout << out_dir << "/vendor.key\n" << out_dir << "/vendor.pub\n";
    return 0;
  }
  auto secret = read_key_file(key_file, 64, true);
  if (!secret) cfg.fail(secret.error().message);
  auto serial = registration_serial(registration);
  if (!serial) cfg.fail("not a registration code: '" + registration + "'");
  UnlockCode code{*serial, licenses, registration, issued ? issued : now_ms()};
  std::cout << make_unlock_code(code, *secret) << "\n";
  return 0;
}
