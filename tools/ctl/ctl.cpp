#include "tools/ctl/ctl.hpp"

#include <zmq.hpp>

#include <algorithm>
#include <charconv>
#include <iostream>
#include <memory>

#include "common/client.hpp"
#include "common/codec.hpp"
#include "common/config.hpp"
#include "common/mdp.hpp"
#include "common/process.hpp"
#include "common/schema.hpp"

namespace primary::ctl {
namespace {

constexpr std::string_view kDefaultServer = "tcp://127.0.0.1:16770";

// A transport failure: a timeout means nobody answered; anything else is a
// reply we could not use.
int report_transport_error(Context& ctx, const Error& e) {
  ctx.err << "primaryctl: " << e.message << "\n";
  return e.code == Code::Unavailable ? kUnreachable : kServerError;
}

// Prints a decoded reply map as JSON; an error reply also goes to stderr as
// "CODE: message".
int report_reply(Context& ctx, const Value& reply) {
  ctx.out << to_json(reply) << "\n";
  const Value* ok = reply.find("ok");
  if (ok && ok->is_bool() && ok->as_bool()) return kOk;
  const Value* code = reply.find("code");
  const Value* message = reply.find("message");
  ctx.err << (code && code->is_str() ? code->as_str() : "ERROR") << ": "
          << (message && message->is_str() ? message->as_str() : "(no message)") << "\n";
  return kServerError;
}

// Services declared in the catalog, in catalog order, plus broker.control.
std::vector<std::string> declared_services() {
  std::vector<std::string> names;
  for (const auto& spec : catalog())
    if (std::find(names.begin(), names.end(), spec.service) == names.end())
      names.emplace_back(spec.service);
  if (std::find(names.begin(), names.end(), "broker.control") == names.end())
    names.emplace_back("broker.control");
  return names;
}

// Left-aligned columns, two spaces apart.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

// ---- subcommands: one declare function each ----

Action declare_call(CLI::App& sub) {
  struct Args {
    std::string service, op;
    std::vector<std::string> fields;
  };
  auto a = std::make_shared<Args>();
  sub.add_option("service", a->service, "Service name, e.g. license.control")->required();
  sub.add_option("op", a->op, "Operation, e.g. reserve (for mmi.*: the raw body)")->required();
  sub.add_option("fields", a->fields,
                 "Request fields as key=value (integers, true, false and null are typed; "
                 "anything else is a string)");
  return [a](Context& ctx) {
    auto fields = parse_fields(a->fields);
    if (!fields) {
      ctx.err << "primaryctl: " << fields.error().message << "\n";
      return static_cast<int>(kUsage);
    }
    return call(ctx, a->service, a->op, *fields);
  };
}

Action declare_services(CLI::App&) {
  return [](Context& ctx) { return services(ctx); };
}

}  // namespace

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"call", "Send any request and print the reply as JSON", declare_call},
      {"services", "List the services with up/down and their worker counts", declare_services},
  };
  return table;
}

Value parse_scalar(std::string_view text) {
  if (text == "true") return Value(true);
  if (text == "false") return Value(false);
  if (text == "null") return Value();
  const bool digits = !text.empty() && text != "-" &&
                      std::all_of(text.begin() + (text[0] == '-' ? 1 : 0), text.end(),
                                  [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec == std::errc() && end == text.data() + text.size()) return Value(n);
  }
  return Value(text);  // also integers too large for int64
}

Result<Value::Map> parse_fields(const std::vector<std::string>& args) {
  Value::Map out;
  for (const auto& arg : args) {
    const auto eq = arg.find('=');
    if (eq == std::string::npos || eq == 0)
      return Error{Code::BadRequest, "bad field '" + arg + "': expected key=value"};
    std::string key = arg.substr(0, eq);
    if (key == "op")
      return Error{Code::BadRequest, "'op' is the OP argument, not a field"};
    if (std::any_of(out.begin(), out.end(), [&](const auto& kv) { return kv.first == key; }))
      return Error{Code::BadRequest, "field '" + key + "' given twice"};
    out.emplace_back(std::move(key), parse_scalar(std::string_view(arg).substr(eq + 1)));
  }
  return out;
}

int call(Context& ctx, const std::string& service, const std::string& op,
         const Value::Map& fields) {
  if (service.starts_with(mdp::kMmiPrefix)) {
    // RFC 8: the body is the raw argument and the reply a raw status code.
    auto raw = ctx.send(service, op);
    if (!raw) return report_transport_error(ctx, raw.error());
    ctx.out << to_json(Value(*raw)) << "\n";
    if (*raw == "200") return kOk;
    ctx.err << *raw << ": " << service << " " << op << "\n";
    return kServerError;
  }
  auto raw = ctx.send(service, encode_request(op, fields));
  if (!raw) return report_transport_error(ctx, raw.error());
  auto reply = unpack_map(*raw);
  if (!reply) {
    ctx.err << "primaryctl: malformed reply body: " << reply.error().message << "\n";
    return kServerError;
  }
  return report_reply(ctx, *reply);
}

int services(Context& ctx) {
  // Worker counts, when this peer may ask the broker for them.
  Value counts;
  bool broker_answered = false;
  auto raw = ctx.send("broker.control", encode_request("workers"));
  if (!raw) return report_transport_error(ctx, raw.error());
  if (auto reply = unpack_map(*raw)) {
    const Value* ok = reply->find("ok");
    broker_answered = ok && ok->is_bool() && ok->as_bool();
    if (const Value* s = reply->find("services"); broker_answered && s) counts = *s;
  }

  std::vector<std::vector<std::string>> rows = {{"SERVICE", "STATE", "WORKERS"}};
  for (const auto& name : declared_services()) {
    if (name == "broker.control") {
      rows.push_back({name, broker_answered ? "up" : "down", "-"});
      continue;
    }
    auto status = ctx.send("mmi.service", name);
    if (!status) return report_transport_error(ctx, status.error());
    const Value* n = counts.find(name);
    const std::string workers =
        n && n->is_int() ? std::to_string(n->as_int()) : (broker_answered ? "0" : "-");
    rows.push_back({name, *status == "200" ? "up" : "down", workers});
  }
  print_table(ctx.out, rows);
  return kOk;
}

int run(int argc, char** argv) {
  Config cfg("primaryctl", "Admin command line of the Primary Server");
  cfg.add_string("server", std::string(kDefaultServer),
                 "Server front door endpoint(s), comma-separated, tried in turn");
  cfg.add_int("timeout-ms", 3000, 1, 600000, "How long to wait for each server tried");
  CLI::App& app = cfg.app();
  app.fallthrough();  // global flags may follow the subcommand
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, Action>> actions;
  for (const auto& c : commands()) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    actions.emplace_back(sub, c.declare(*sub));
  }
  cfg.parse(argc, argv);

  ClientOptions options;
  options.endpoints = split_list(cfg.str("server"));
  if (options.endpoints.empty()) cfg.fail("--server names no endpoint");
  options.timeout_ms = static_cast<int>(cfg.integer("timeout-ms"));
  options.attempts = static_cast<int>(options.endpoints.size());

  zmq::context_t zctx(1);
  MdpClient client(zctx, options);
  Context ctx{[&](const std::string& service, const std::string& body) {
                return client.request(service, body);
              },
              std::cout, std::cerr};
  for (auto& [sub, action] : actions)
    if (sub->parsed()) return action(ctx);
  return kUsage;
}

}  // namespace primary::ctl
