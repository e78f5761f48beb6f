// primaryctl internals shared by the files that hold the subcommands:
// one request with its outcome already reported, and small printers.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "ctl/ctl.hpp"

namespace primary::ctl {

// The outcome of one request: the reply map when the server said ok, else
// the exit code, with the reason already written to ctx.err.
struct Answer {
  Value reply;
  int exit = kOk;
  explicit operator bool() const { return exit == kOk; }
};
Answer ask(Context& ctx, const std::string& service, const std::string& op,
           Value::Map fields = {});

// Reports a transport failure: 3 for no reply, 1 for an unusable one.
int report_transport_error(Context& ctx, const Error& e);
// "CODE: message" of an error reply on ctx.err; returns 1.
int report_error_reply(Context& ctx, const Value& reply);

// --json output. One document per run: the reply (print_reply), or an
// array or object the command builds; a stream (events, log --follow)
// prints one object a line.
void print_json(Context& ctx, const Value& v);
// The reply map without the envelope fields `ok` and `rid`.
Value without_envelope(const Value& reply);
// With --json prints the reply map, else calls `human`; returns a.exit.
int print_reply(Context& ctx, const Answer& a, const std::function<void(const Value&)>& human);
// A JSON array written an item at a time (paged results): "[", one item a
// line, "]" on close(); an empty array when nothing was added.
class JsonArray {
 public:
  explicit JsonArray(std::ostream& out) : out_(out) {}
  void add(const Value& item);
  void close();

 private:
  std::ostream& out_;
  bool open_ = false;
};

// Left-aligned columns, two spaces apart.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows);
// A value as a key=value right-hand side: plain when it has no blanks, else JSON.
std::string field_text(const Value& v);
// "3d 4h 5m 6s", leading zero units left out.

// A command gets --json and its --help example from its table line in ctl.cpp,
// {"name", "help", declare_name, "primaryctl name ARGS"}; its action honours ctx.json.
Action declare_keys(CLI::App& sub);
Action declare_register(CLI::App& sub);
Action declare_registration(CLI::App& sub);
Action declare_unlock(CLI::App& sub);
Action declare_reserve(CLI::App& sub);
Action declare_setup_info(CLI::App& sub);
Action declare_command(CLI::App& sub);
Action declare_retire(CLI::App& sub);
Action declare_transfer(CLI::App& sub);
Action declare_retire_request(CLI::App& sub);
Action declare_transfer_request(CLI::App& sub);
Action declare_status(CLI::App& sub);
Action declare_computers(CLI::App& sub);
Action declare_computer(CLI::App& sub);
Action declare_log(CLI::App& sub);
// `log verify` (ctl/log_verify.cpp): the stream, or --file in order.
struct LogVerifyArgs {
  std::vector<std::string> files;
  std::vector<std::string> keys;  // base64url log public keys trusted besides the server's
  bool offline = false;           // with --file: do not ask the server
};
int log_verify(Context& ctx, const LogVerifyArgs& a);
// `log key`: the server's log checkpoint public key.
int log_key(Context& ctx);
Action declare_events(CLI::App& sub);
Action declare_firewall(CLI::App& sub);
Action declare_history(CLI::App& sub);
Action declare_updates(CLI::App& sub);
Action declare_web_password(CLI::App& sub);
Action declare_backup(CLI::App& sub);

}  // namespace primary::ctl
