// The setup file a Client is installed with: what `license.control
// setup_info` answers, written as JSON by `primaryctl setup-info NAME --out
// FILE`:
//
//   {"computer": "WS-01", "license": "...", "serial": "SN-1",
//    "endpoints": ["tcp://server:16770"], "server_key": "<Z85>",
//    "lease_key": "<base64url>", "lease_keys": ["<base64url>", ...]}
//
// `lease_keys`, when present, is the whole key set a lease may be signed by
// (during a lease key rotation, the current key and the next or previous
// one); `lease_key` is the key signing when the file was written.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "primary/client/expected.hpp"

namespace primary::client {

struct SetupInfo {
  std::string computer;
  std::string license;
  std::string serial;
  std::vector<std::string> endpoints;  // in failover order
  std::string server_key;              // Z85 CURVE key; empty in insecure mode
  std::string lease_key;               // base64url of the 32-byte public lease key
  std::vector<std::string> lease_keys; // the key set (base64url each); empty in older setup files
};

// Reads and checks a setup file; the error names the file and the problem.
Expected<SetupInfo> load_setup(const std::string& path);
// The same from JSON text already in memory.
Expected<SetupInfo> parse_setup(std::string_view json);

}  // namespace primary::client
