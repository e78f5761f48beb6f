// primaryctl keys: an admin's CURVE keypair, made on the admin's machine;
// only the public half goes to the server's allow-list.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <ostream>

#include "common/curve.hpp"
#include "ctl/commands.hpp"

namespace primary::ctl {
namespace {

bool valid_key_name(const std::string& name) {
  return !name.empty() && name.size() <= 64 && name[0] != '.' &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
         });
}

int create_keys(Context& ctx, const std::string& dir, const std::string& name) {
  if (!valid_key_name(name)) {
    ctx.err << "primaryctl: --name '" << name << "': expected 1 to 64 of A-Z a-z 0-9 - _ .\n";
    return kUsage;
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    ctx.err << "primaryctl: cannot create " << dir << ": " << std::strerror(errno) << "\n";
    return kServerError;
  }
  const std::string base = dir + "/" + name;
  for (const std::string& path : {base + ".key", base + ".pub"})
    if (::access(path.c_str(), F_OK) == 0) {
      ctx.err << "primaryctl: " << path << " already exists; refusing to overwrite it\n";
      return kServerError;
    }
  const CurveKeypair kp = curve_keypair();
  if (auto written = write_curve_keypair(base, kp); !written) {
    ctx.err << "primaryctl: " << written.error().message << "\n";
    return kServerError;
  }
  const std::string allow_line = kp.public_key + "  # " + name;
  if (ctx.json) {
    print_json(ctx, Value(Value::Map{{"secret_key_file", Value(base + ".key")},
                                     {"public_key_file", Value(base + ".pub")},
                                     {"public_key", Value(kp.public_key)},
                                     {"allow_list_line", Value(allow_line)}}));
    return kOk;
  }
  ctx.out << "wrote " << base << ".key (secret, 0600) and " << base << ".pub\n"
          << "public key: " << kp.public_key << "\n"
          << "\n"
          << "To give this key the admin role, append this line to the server's admin\n"
          << "allow-list (DATA/keys/admins unless primary-server has --admin-keys FILE):\n"
          << "\n"
          << "    " << allow_line << "\n"
          << "\n"
          << "then make primary-server re-read it (no restart):\n"
          << "\n"
          << "    kill -HUP $(pidof primary-server)\n"
          << "\n"
          << "and connect with:\n"
          << "\n"
          << "    primaryctl --server-key DATA/keys/server.pub --client-key " << base
          << ".key status\n";
  return kOk;
}

}  // namespace

Action declare_keys(CLI::App& sub) {
  struct Args {
    std::string dir, name = "admin";
  };
  auto a = std::make_shared<Args>();
  sub.require_subcommand(1);
  CLI::App* create = sub.add_subcommand(
      "create", "Write DIR/NAME.key (secret, 0600) and DIR/NAME.pub; never overwrites");
  create->add_option("--out", a->dir, "Directory for the key files (made 0700 if missing)")
      ->required();
  create->add_option("--name", a->name, "Key file name without extension (default admin)");
  return [a](Context& ctx) { return create_keys(ctx, a->dir, a->name); };
}

}  // namespace primary::ctl
