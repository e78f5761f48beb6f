// primaryctl keys: an admin's CURVE keypair, made on the admin's machine
// (only the public half goes to the server's allow-list); and the rotation
// of the server's lease key, on the server's host.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <ostream>

#include "common/crypto.hpp"
#include "common/curve.hpp"
#include "common/process.hpp"
#include "common/tokens.hpp"
#include "ctl/commands.hpp"

namespace primary::ctl {
namespace {

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

struct RotateArgs {
  std::string data_dir = "./var", file;
  int64_t overlap_s = 14400 + 3600;
};

// The key set as a table (or JSON): id, public key, from when it signs,
// when it leaves the set, and what it is at `now`.
int print_lease_keys(Context& ctx, const LeaseKeySet& set, int64_t now, const std::string& file) {
  const LeaseKey* signer = set.signer(now);
  Value::Array items;
  std::vector<std::vector<std::string>> rows = {{"KEY ID", "PUBLIC KEY", "SIGNS FROM", "RETIRES", "NOW"}};
  for (const LeaseKey& k : set.keys) {
    const std::string state = !k.published(now) ? "retired" : &k == signer ? "signing"
                              : k.sign_from > now ? "published, not signing yet" : "published (verifies old leases)";
    const std::string pub = base64url_encode(k.public_key());
    items.emplace_back(Value::Map{{"kid", Value(lease_key_id(k.public_key()))},
                                  {"public_key", Value(pub)},
                                  {"sign_from", Value(k.sign_from)},
                                  {"retire_at", Value(k.retire_at)},
                                  {"state", Value(state)}});
    rows.push_back({lease_key_id(k.public_key()), pub, k.sign_from ? iso_utc(k.sign_from * 1000, false) : "start",
                    k.retire_at ? iso_utc(k.retire_at * 1000, false) : "never", state});
  }
  if (ctx.json) {
    print_json(ctx, Value(Value::Map{{"file", Value(file)}, {"keys", Value(std::move(items))}}));
    return kOk;
  }
  print_table(ctx.out, rows);
  return kOk;
}

int rotate_lease(Context& ctx, const RotateArgs& a) {
  const std::string file = a.file.empty() ? a.data_dir + "/keys/lease.key" : a.file;
  auto set = read_lease_keys(file);
  if (!set) {
    ctx.err << "primaryctl: " << set.error().message << "\n";
    return kServerError;
  }
  const int64_t now = unix_ms() / 1000;
  auto next = rotate_lease_keys(*set, now, a.overlap_s);
  if (!next) {
    ctx.err << "primaryctl: not rotated: " << next.error().message << "\n";
    return kServerError;
  }
  // The file keeps its owner (primaryctl may run as root for the server's
  // user) and its 0600.
  struct stat st;
  const bool known = ::stat(file.c_str(), &st) == 0;
  if (auto written = write_file_atomic(file, lease_keys_text(*next), 0600); !written) {
    ctx.err << "primaryctl: " << written.error().message << "\n";
    return kServerError;
  }
  if (known && (st.st_uid != ::geteuid() || st.st_gid != ::getegid()) && ::chown(file.c_str(), st.st_uid, st.st_gid) != 0) {
    ctx.err << "primaryctl: rotated, but " << file << " could not be given back to its owner (uid " << st.st_uid
            << "): " << std::strerror(errno) << "; chown it before the workers re-read it\n";
    return kServerError;
  }
  if (ctx.json) return print_lease_keys(ctx, *next, now, file);
  const LeaseKey& made = next->keys.back();
  int64_t gone = 0;  // when the last key before the new one leaves the set, as the file now says
  for (size_t i = 0; i + 1 < next->keys.size(); ++i) gone = std::max(gone, next->keys[i].retire_at);
  ctx.out << "rotated the lease key in " << file << ": the new key " << lease_key_id(made.public_key())
          << " is published now and signs from " << iso_utc(made.sign_from * 1000, false)
          << "; the keys before it leave the set at " << iso_utc(gone * 1000, false) << "\n\n";
  print_lease_keys(ctx, *next, now, file);
  ctx.out << "\nThe licensing workers take the new set within a second. Before the new key signs:\n"
          << "  - copy " << file << " (mode 0600) to every host that runs primary-licensed with its own copy;\n"
          << "  - have every Data Vault refresh its key set (`primaryctl setup-info NAME` gives lease_keys).\n";
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
  auto r = std::make_shared<RotateArgs>();
  CLI::App* rotate = sub.add_subcommand(
      "rotate-lease",
      "On the server's host: make the next lease key, published now, signing after the overlap; "
      "the keys before it leave the set one overlap later");
  rotate->add_option("--data-dir", r->data_dir, "primary-server's data directory (default ./var)")
      ->envname("PRIMARY_DATA_DIR");
  rotate->add_option("--lease-key", r->file, "The lease key file itself (default DATA/keys/lease.key)");
  rotate->add_option("--overlap-s", r->overlap_s,
                     "Seconds between publishing the new key and signing with it, and again until the old "
                     "keys leave: at least the servers' check interval plus grace (default 18000, their "
                     "defaults 4 h + 1 h)")
      ->check(CLI::Range(int64_t{1}, int64_t{365} * 86400));
  return [a, create, r, rotate](Context& ctx) {
    if (rotate->parsed()) return rotate_lease(ctx, *r);
    return create_keys(ctx, a->dir, a->name);
  };
}

}  // namespace primary::ctl
