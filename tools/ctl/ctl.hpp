// primaryctl: the admin command line. Each subcommand is one entry in the
// table of commands() in ctl.cpp: a function that declares its arguments on
// its CLI11 subcommand and returns the action to run once argv is parsed.
// Actions talk to the server only through a Transport, so they can be tested
// without sockets, and report with the exit codes below.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.hpp"
#include "common/value.hpp"

namespace primary::ctl {

// Exit codes of primaryctl.
enum Exit : int {
  kOk = 0,           // the server answered ok
  kServerError = 1,  // the server answered with an error reply
  kUsage = 2,        // bad command line
  kUnreachable = 3,  // no answer within the timeout
};

// Sends one body to a service and returns the raw reply body; an error means
// no usable reply (timeout, or a reply that is not an MDP/0.1 reply).
using Transport = std::function<Result<std::string>(const std::string& service,
                                                    const std::string& body)>;

// What an action gets: the way to the server and the two output streams.
struct Context {
  Transport send;
  std::ostream& out;  // results (JSON, tables)
  std::ostream& err;  // errors, one line each
};

using Action = std::function<int(Context&)>;

// One subcommand: `declare` adds its arguments to `sub` and returns the action.
struct Command {
  const char* name;
  const char* help;
  Action (*declare)(CLI::App& sub);
};

// Every subcommand, in the order `--help` lists them.
const std::vector<Command>& commands();

// "42" -> int, "true"/"false" -> bool, "null" -> nil, anything else -> string.
Value parse_scalar(std::string_view text);
// Parses key=value arguments into request fields; an error names the bad one.
Result<Value::Map> parse_fields(const std::vector<std::string>& args);

// Sends {op, ...fields} to `service` and prints the reply as JSON; MMI
// services (mmi.*) get `op` as their raw body instead.
int call(Context& ctx, const std::string& service, const std::string& op,
         const Value::Map& fields);
// Prints each declared service with up/down (MMI) and its worker count
// (broker.control) when the broker tells it.
int services(Context& ctx);

// The whole program: parses argv, connects, runs the chosen subcommand;
// returns the exit code.
int run(int argc, char** argv);

}  // namespace primary::ctl
