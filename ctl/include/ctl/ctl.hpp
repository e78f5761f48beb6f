// primaryctl: the admin command line. Each subcommand is one entry in the
// table of commands() in ctl.cpp: a function that declares its arguments on
// its CLI11 subcommand and returns the action to run once argv is parsed.
// Actions talk to the server only through the Context (a Transport for one
// request, a Pipeline for many, a Subscribe for the event stream) and to the
// machine only through its Host, so they can be tested without sockets, and
// report with the exit codes below.
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.hpp"
#include "common/value.hpp"

namespace primary::ctl {

// Exit codes of primaryctl.
enum Exit : int {
  kOk = 0,           // the server answered ok
  kServerError = 1,  // the server answered with an error reply, or a local step failed
  kUsage = 2,        // bad command line (arguments, keys, files named on it)
  kUnreachable = 3,  // no answer within the timeout
};

// Sends one body to a service and returns the raw reply body; an error means
// no usable reply (timeout, or a reply that is not an MDP/0.1 reply).
using Transport = std::function<Result<std::string>(const std::string& service,
                                                    const std::string& body)>;

// Sends many bodies to one service with several in flight and returns the
// replies in request order. Body i must be a map whose `rid` is i: replies
// are matched by the rid they echo. Unanswered requests may be sent again
// (to the next endpoint), so only idempotent operations go this way; one
// that never got a reply is an UNAVAILABLE error.
using Pipeline = std::function<std::vector<Result<std::string>>(
    const std::string& service, const std::vector<std::string>& bodies)>;

// The live event stream: subscribe() connects and returns a function that
// waits up to `timeout_ms` for the next event map (nullopt: none came).
// An error means the stream cannot be reached as configured.
using NextEvent = std::function<std::optional<Value>(int timeout_ms)>;
using Subscribe = std::function<Result<NextEvent>()>;

// What actions need from the machine besides the server.
struct Host {
  std::function<void(std::chrono::milliseconds)> sleep;
  std::function<int64_t()> now_ms;                      // Unix time
  std::function<bool(const std::string&)> on_path;      // an executable of that name on PATH
  std::function<int(const std::string&)> shell;         // runs a line with /bin/sh; its exit status
  std::function<std::istream&()> in;                    // standard input
};

// The real machine: sleep_for, the system clock, PATH, /bin/sh, std::cin.
Host real_host();

// What an action gets: the way to the server, the host and the two output streams.
struct Context {
  Transport send;
  std::ostream& out;  // results (JSON, tables)
  std::ostream& err;  // errors, one line each
  Pipeline send_many = {};
  Subscribe subscribe = {};
  Host host = real_host();
  bool json = false;  // --json: JSON on `out` instead of tables and lines
};

using Action = std::function<int(Context&)>;

// One subcommand: `declare` adds its arguments to `sub` and returns the
// action. run() gives every one --json (Context::json) and a help footer
// made of `example`: full command lines, one a line.
struct Command {
  const char* name;
  const char* help;
  Action (*declare)(CLI::App& sub);
  const char* example = nullptr;
};

// Every subcommand, in the order `--help` lists them.
const std::vector<Command>& commands();
// Adds `c` to `app` as a subcommand with its own arguments plus what every
// command has: --json, and the footer "Example:" with c.example (nested
// subcommands get the footer too, and pass --json up). Returns c's action.
Action add_command(CLI::App& app, const Command& c);

// "42" -> int, "true"/"false" -> bool, "null" -> nil, anything else -> string.
Value parse_scalar(std::string_view text);
// Parses key=value arguments into a map; an error names the bad one.
Result<Value::Map> parse_pairs(const std::vector<std::string>& args);
// parse_pairs for request fields: `op` is not a field.
Result<Value::Map> parse_fields(const std::vector<std::string>& args);

// Sends {op, ...fields} to `service` and prints the reply as JSON; MMI
// services (mmi.*) get `op` as their raw body instead.
int call(Context& ctx, const std::string& service, const std::string& op,
         const Value::Map& fields);
// Prints each declared service with up/down (MMI) and its worker count
// (broker.control) when the broker tells it.
int services(Context& ctx);

// Computer names from a list: one a line; blank lines skipped, `#` starts a
// comment, surrounding blanks trimmed.
std::vector<std::string> read_names(std::istream& in);
// Reserves every name through ctx.send_many; one line per name, then
// "reserved N new, M existing, K refused; R of P licenses in use".
// 1 if any was refused, 3 if none was answered.
int reserve(Context& ctx, const std::vector<std::string>& names);

// Stream ids "<ms>-<seq>" compared numerically; false for anything else.
bool event_id_less(std::string_view a, std::string_view b);
// One line for an event: ISO-8601 UTC time, type, key=value fields
// (computer first, then by name), id, then "by ACTOR" when it names one
// ("by web:1.2.3.4 (via internal)" for the console acting for a browser).
std::string event_line(const Value& event);
// Unix ms -> "2024-05-01T12:00:00.123Z" (without ".123" unless millis).
std::string iso_utc(int64_t unix_ms, bool millis = true);

// The event endpoint next to a front door: the same address, port + 1.
Result<std::string> events_endpoint_for(const std::string& front);
// A --server-key value: a readable file holding a Z85 public key, or the key.
Result<std::string> resolve_server_key(const std::string& value);

// The whole program: parses argv, connects, runs the chosen subcommand;
// returns the exit code.
int run(int argc, char** argv);

}  // namespace primary::ctl
