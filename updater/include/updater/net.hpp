// The updater's network and archive side. libcurl and libarchive bring
// some thirty shared libraries with them (two TLS stacks, LDAP, SSH, ICU,
// XML...), ~6 MiB resident in each process that maps them, and
// primary-updater needs them only while it syncs a feed or imports a
// bundle. So this code is built as a module, primary-updater-net.so next
// to the executables, which the updater loads on first use; an idle
// updater maps none of it. primary-vendor links bundle.cpp directly.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/errors.hpp"
#include "updater/bundle.hpp"

namespace primary::updater {

// What one transfer into a file did.
struct FileTransfer {
  int64_t written = 0;         // bytes in the file afterwards
  bool overflow = false;       // the server sent more than the limit
  int write_errno = 0;         // writing the file failed, and why
  bool range_refused = false;  // the server cannot resume where the file ends
  std::string error;           // why the transfer failed; empty when it completed
};

// The module's entry points (net.cpp); both sides are built from this header.
struct NetApi {
  // A whole (small) resource into memory, at most `max_bytes`.
  Result<std::string> (*fetch_url)(const std::string& url, int64_t max_bytes);
  // Appends to `fd` (opened O_APPEND, holding `have` bytes) what `url` has
  // from byte `have` on, refusing to grow the file past `limit`.
  // `keepalive` is called every few seconds; returning false aborts.
  FileTransfer (*fetch_into)(const std::string& url, int fd, int64_t have, int64_t limit,
                             const std::function<bool()>& keepalive);
  Result<UnpackedBundle> (*read_bundle)(const std::string& path, const std::string& staging_dir);
};

// Where the module is looked for: next to the running executable, else in
// ../lib/primary/ from it (the installed layout).
std::string net_module_path();

// The module's table, loaded at the first call (thread-safe); the error
// names the file and dlopen's reason.
Result<const NetApi*> net_api();

}  // namespace primary::updater
