// Settings for every program: command-line flags (CLI11), PRIMARY_*
// environment variables and a TOML config file, with the precedence
// flag > environment > file > default. Any bad value or unknown file key
// ends the program with exit code 2 and one clear line on stderr.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace primary {

class Config {
 public:
  Config(std::string program, std::string description);

  // Declarations (before parse). `name` is the long flag without "--";
  // its environment variable is PRIMARY_NAME (upper-case, '-' -> '_') and
  // its config-file key is the name itself (or with '_' for '-').
  void add_string(const std::string& name, std::string def, const std::string& help);
  void add_int(const std::string& name, int64_t def, int64_t min, int64_t max,
               const std::string& help);
  void add_double(const std::string& name, double def, double min, double max,
                  const std::string& help);
  void add_flag(const std::string& name, const std::string& help);
  // Adds --config FILE (env PRIMARY_CONFIG).
  void add_config_file();
  // Positional arguments and subcommands can be declared on the app directly.
  CLI::App& app() { return app_; }

  // Parses argv and resolves every setting; exits on error (2) or --help (0).
  void parse(int argc, char** argv);

  const std::string& str(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  double number(const std::string& name) const;
  bool flag(const std::string& name) const;
  // True when the value came from a flag, the environment or the file.
  bool given(const std::string& name) const;

  [[noreturn]] void fail(const std::string& message) const;
  const std::string& program() const { return program_; }

 private:
  enum class Kind { Str, Int, Double, Flag };
  struct Setting {
    Kind kind;
    std::string def;
    int64_t imin = 0, imax = 0;
    double dmin = 0, dmax = 0;
    std::string cli_value;
    bool cli_flag = false;
    CLI::Option* option = nullptr;
    std::string value;  // resolved, as text
    bool given = false;
  };
  void check_value(const std::string& name, Setting& s, const std::string& origin);
  Setting& setting(const std::string& name);
  const Setting& setting(const std::string& name) const;

  std::string program_;
  CLI::App app_;
  std::map<std::string, Setting> settings_;
  std::vector<std::string> order_;
  bool has_config_file_ = false;
  std::string config_path_;
};

// Settings names every program of the product accepts in a shared config
// file; a key outside this list is an error, one inside it but not declared
// by the program reading the file is ignored.
bool known_product_setting(const std::string& name);

std::string env_name(const std::string& setting);

}  // namespace primary
