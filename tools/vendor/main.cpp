// primary-vendor: the vendor's side. Makes the vendor signing key and issues
// unlock codes for a server's registration code.
#include <sys/stat.h>

#include <chrono>
#include <iostream>

#include "common/config.hpp"
#include "common/crypto.hpp"
#include "common/tokens.hpp"

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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

  cfg.parse(argc, argv);

  if (keygen->parsed()) {
    ::mkdir(out_dir.c_str(), 0700);
    const SignKeypair kp = sign_keypair();
    if (auto err = write_key_file(out_dir + "/vendor.key", kp.secret_key, 0600)) cfg.fail(err->message);
    if (auto err = write_key_file(out_dir + "/vendor.pub", kp.public_key, 0644)) cfg.fail(err->message);
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
