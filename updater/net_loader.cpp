// Loads primary-updater-net.so on first use (net.hpp says why).
#include <dlfcn.h>
#include <unistd.h>

#include <climits>

#include "updater/net.hpp"

namespace primary::updater {

std::string net_module_path() {
  char exe[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  const std::string self = n > 0 ? std::string(exe, static_cast<size_t>(n)) : std::string();
  const size_t slash = self.find_last_of('/');
  const std::string dir = slash == std::string::npos || slash == 0 ? std::string(".") : self.substr(0, slash);
  // Beside the executable (the build's bin/), then PREFIX/lib/primary/ for
  // an installed PREFIX/bin/primary-updater (cmake/Packaging.cmake).
  const std::string beside = dir + "/primary-updater-net.so";
  const std::string installed = dir + "/../lib/primary/primary-updater-net.so";
  if (::access(beside.c_str(), F_OK) != 0 && ::access(installed.c_str(), F_OK) == 0) return installed;
  return beside;
}

Result<const NetApi*> net_api() {
  // Loaded once and kept: libcurl and OpenSSL are not made to be unloaded.
  static const Result<const NetApi*> api = []() -> Result<const NetApi*> {
    const std::string path = net_module_path();
    void* module = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!module) return Error{Code::Internal, std::string("cannot load the updater's network module: ") + ::dlerror()};
    using Entry = const NetApi* (*)();
    auto entry = reinterpret_cast<Entry>(::dlsym(module, "primary_updater_net_api"));
    if (!entry) return Error{Code::Internal, path + " is not the updater's network module"};
    return entry();
  }();
  return api;
}

}  // namespace primary::updater
