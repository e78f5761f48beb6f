// Offline bundles: the signed feed plus its files in one tar archive
// (`feed` and `files/<name>`), for servers without Internet access. The
// archive is only a carrier: what counts is the feed's signature and each
// file's signed size and hash, checked on import as for a download.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.hpp"

namespace primary::updater {

// Writes `feed` and each (name, source path) as files/<name>; atomic (temp + rename).
Status write_bundle(const std::string& out, const std::string& feed,
                    const std::vector<std::pair<std::string, std::string>>& files);

struct UnpackedBundle {
  std::string feed;
  std::map<std::string, std::string> files;  // name -> staged path under the staging dir
};

// Reads a bundle, staging each file under `staging_dir` with a name of our
// own (entry names are never used as paths). Entries other than `feed` and
// plain `files/<name>` are refused. The caller removes the staged files.
Result<UnpackedBundle> read_bundle(const std::string& path, const std::string& staging_dir);

}  // namespace primary::updater
