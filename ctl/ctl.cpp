#include "ctl/ctl.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "common/client.hpp"
#include "common/codec.hpp"
#include "common/config.hpp"
#include "common/curve.hpp"
#include "common/mdp.hpp"
#include "common/process.hpp"
#include "common/schema.hpp"
#include "ctl/commands.hpp"

namespace primary::ctl {
namespace {

constexpr std::string_view kDefaultServer = "tcp://127.0.0.1:16770";
constexpr size_t kWindow = 64;  // pipelined requests in flight on one connection

// Prints a decoded reply map as JSON; an error reply also goes to stderr as
// "error: CODE: message".
int report_reply(Context& ctx, const Value& reply) {
  ctx.out << to_json(reply) << "\n";
  if (reply_ok(reply)) return kOk;
  return report_error_reply(ctx, reply);
}

// Services declared in the catalog, in catalog order, plus broker.control.
std::vector<std::string> declared_services() {
  std::vector<std::string> names;
  for (const auto& spec : catalog())
    if (std::find(names.begin(), names.end(), spec.service) == names.end())
      names.emplace_back(spec.service);
  if (std::find(names.begin(), names.end(), svc::kBrokerControl) == names.end())
    names.emplace_back(svc::kBrokerControl);
  return names;
}

// ---- the generic subcommands ----

Action declare_call(CLI::App& sub) {
  struct Args {
    std::string service, op;
    std::vector<std::string> fields;
  };
  auto a = std::make_shared<Args>();
  sub.add_option("service", a->service, "Service name, e.g. license.control")->required();
  sub.add_option(field::kOp, a->op, "Operation, e.g. reserve (for mmi.*: the raw body)")->required();
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

// Who the server takes this connection for: the name the activity log
// gives this admin key (or its fingerprint), its role, its address.
Action declare_whoami(CLI::App&) {
  return [](Context& ctx) {
    Answer a = ask(ctx, svc::kBrokerControl, opname::kWhoami);
    return print_reply(ctx, a, [&](const Value& r) {
      ctx.out << "actor " << reply_str(r, field::kActor) << "\nrole  " << reply_str(r, field::kRole)
              << "\npeer  " << reply_str(r, field::kPeer) << "\n";
    });
  };
}

// ---- transports ----

std::unique_ptr<zmq::socket_t> open_socket(zmq::context_t& zctx, zmq::socket_type type,
                                           const ClientOptions& o, const std::string& endpoint) {
  auto s = std::make_unique<zmq::socket_t>(zctx, type);
  s->set(zmq::sockopt::linger, 0);
  if (!o.server_key.empty()) {
    s->set(zmq::sockopt::curve_serverkey, o.server_key);
    s->set(zmq::sockopt::curve_publickey, o.public_key);
    s->set(zmq::sockopt::curve_secretkey, o.secret_key);
  }
  s->connect(endpoint);
  return s;
}

// The rid of a reply body when it is an index below n.
std::optional<size_t> reply_index(std::string_view body, size_t n) {
  auto reply = unpack_map(body);
  if (!reply) return std::nullopt;
  const Value* rid = reply->find(field::kRid);
  if (!rid || !rid->is_int() || rid->as_int() < 0 || static_cast<uint64_t>(rid->as_int()) >= n)
    return std::nullopt;
  return static_cast<size_t>(rid->as_int());
}

// Lazy Pirate for a pipeline: up to kWindow requests in flight on one DEALER;
// when no reply comes for timeout_ms, a fresh socket to the next endpoint
// takes the unanswered ones again.
std::vector<Result<std::string>> send_pipelined(zmq::context_t& zctx, const ClientOptions& o,
                                                const std::string& service,
                                                const std::vector<std::string>& bodies) {
  const size_t n = bodies.size();
  std::vector<std::optional<std::string>> got(n);
  size_t endpoint = 0, answered = 0;
  for (int attempt = 0; attempt < std::max(1, o.attempts) && answered < n; ++attempt) {
    auto socket = open_socket(zctx, zmq::socket_type::dealer, o, o.endpoints[endpoint]);
    std::deque<size_t> queue;
    for (size_t i = 0; i < n; ++i)
      if (!got[i]) queue.push_back(i);
    size_t in_flight = 0;
    auto send_next = [&] {
      const size_t i = queue.front();
      queue.pop_front();
      mdp::send_request(*socket, service, bodies[i]);
      ++in_flight;
    };
    while (in_flight < kWindow && !queue.empty()) send_next();
    bool stalled = false;
    while (in_flight > 0) {
      zmq::pollitem_t item{socket->handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(o.timeout_ms));
      if (!(item.revents & ZMQ_POLLIN)) {
        stalled = true;
        break;
      }
      mdp::Frames in;
      mdp::recv_frames(*socket, in);
      const auto body = mdp::reply_body(in, service);
      if (!body) continue;
      auto i = reply_index(*body, n);
      if (!i || got[*i]) continue;
      got[*i] = std::string(*body);
      ++answered;
      --in_flight;
      if (!queue.empty()) send_next();
    }
    if (!stalled) break;
    endpoint = (endpoint + 1) % o.endpoints.size();
  }
  std::vector<Result<std::string>> replies;
  replies.reserve(n);
  for (auto& g : got) {
    if (g) replies.emplace_back(std::move(*g));
    else replies.emplace_back(Error{Code::Unavailable, "no reply within " + std::to_string(o.timeout_ms) + " ms"});
  }
  return replies;
}

// A SUB on the event stream, every topic.
Result<NextEvent> subscribe_events(zmq::context_t& zctx, const ClientOptions& o,
                                   const std::string& endpoint) {
  std::shared_ptr<zmq::socket_t> sub;
  try {
    sub = open_socket(zctx, zmq::socket_type::sub, o, endpoint);
    sub->set(zmq::sockopt::subscribe, "");
  } catch (const zmq::error_t& e) {
    return Error{Code::BadRequest, "cannot connect to the event stream " + endpoint + ": " + e.what()};
  }
  return NextEvent([sub](int timeout_ms) -> std::optional<Value> {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      zmq::pollitem_t item{sub->handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::max(left, std::chrono::milliseconds(0)));
      if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
      mdp::Frames in;
      mdp::recv_frames(*sub, in);
      if (in.size() != 2) continue;
      auto event = unpack_map(mdp::view(in[1]));
      if (event && event->find(field::kId)) return std::move(*event);
    }
  });
}

bool executable_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = end > start ? dirs.substr(start, end - start) : ".";
    const std::string candidate = dir + "/" + name;
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return true;
    start = end + 1;
  }
  return false;
}

int run_shell(const std::string& line) {
  std::cout.flush();
  std::cerr.flush();
  const int status = std::system(line.c_str());  // /bin/sh -c line
  if (status == -1) return 127;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace

// ---- shared helpers (commands.hpp) ----

int report_transport_error(Context& ctx, const Error& e) {
  ctx.err << "primaryctl: " << e.message << "\n";
  return e.code == Code::Unavailable ? kUnreachable : kServerError;
}

int report_error_reply(Context& ctx, const Value& reply) {
  const Value* code = reply.find(field::kCode);
  const Value* message = reply.find(field::kMessage);
  ctx.err << "error: " << (code && code->is_str() ? code->as_str() : "ERROR") << ": "
          << (message && message->is_str() ? message->as_str() : "(no message)") << "\n";
  return kServerError;
}

Answer ask(Context& ctx, const std::string& service, const std::string& op, Value::Map fields) {
  Answer a;
  auto raw = ctx.send(service, encode_request(op, std::move(fields)));
  if (!raw) {
    a.exit = report_transport_error(ctx, raw.error());
    return a;
  }
  auto reply = unpack_map(*raw);
  if (!reply) {
    ctx.err << "primaryctl: malformed reply body: " << reply.error().message << "\n";
    a.exit = kServerError;
    return a;
  }
  if (!reply_ok(*reply)) a.exit = report_error_reply(ctx, *reply);
  a.reply = std::move(*reply);
  return a;
}

void print_json(Context& ctx, const Value& v) { ctx.out << to_json(v) << "\n"; }

Value without_envelope(const Value& reply) {
  Value::Map out;
  if (reply.is_map())
    for (const auto& [k, v] : reply.as_map())
      if (k != field::kOk && k != field::kRid) out.emplace_back(k, v);
  return Value(std::move(out));
}

int print_reply(Context& ctx, const Answer& a, const std::function<void(const Value&)>& human) {
  if (!a) return a.exit;
  if (ctx.json) print_json(ctx, a.reply);
  else human(a.reply);
  return a.exit;
}

void JsonArray::add(const Value& item) {
  out_ << (open_ ? ",\n" : "[\n") << to_json(item);
  open_ = true;
}

void JsonArray::close() {
  out_ << (open_ ? "\n]\n" : "[]\n");
  open_ = false;
  out_.flush();
}

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

std::string field_text(const Value& v) {
  if (v.is_str()) {
    const auto& s = v.as_str();
    const bool plain = !s.empty() && std::none_of(s.begin(), s.end(), [](char c) {
      return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '=';
    });
    if (plain) return s;
  }
  return to_json(v);
}

// ---- the table ----

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"call", "Send any request and print the reply as JSON", declare_call,
       "primaryctl call license.control reserve computer=ws-01\n"
       "primaryctl call mmi.service admin"},
      {field::kServices, "List the services with up/down and their worker counts", declare_services,
       "primaryctl --server tcp://10.0.0.5:16770 services"},
      {"whoami", "Who the server takes this connection for (the actor its activity log names)",
       declare_whoami, "primaryctl --client-key ~/.primary/alice.key whoami"},
      {"keys",
       "Admin CURVE keys: `keys create --out DIR [--name NAME]`; the lease key: `keys rotate-lease [--overlap-s N]`",
       declare_keys,
       "primaryctl keys create --out ~/.primary --name alice"},
      {"register", "Register SERIAL; prints the registration code to send to the vendor",
       declare_register, "primaryctl register SN-1234-5678"},
      {"registration", "Print the registered serial and its registration code",
       declare_registration, "primaryctl registration --json"},
      {"unlock", "Unlock with the vendor's CODE; prints the serial and licenses purchased",
       declare_unlock, "primaryctl unlock \"$(cat unlock-code.txt)\""},
      {"reserve", "Reserve a license for each NAME (or --from FILE, - for stdin), pipelined",
       declare_reserve,
       "primaryctl reserve ws-01 ws-02\n"
       "primaryctl reserve --from computers.txt --json"},
      {"setup-info", "Print a computer's setup file (JSON), or write it with --out FILE",
       declare_setup_info, "primaryctl setup-info ws-01 --out ws-01.json"},
      {field::kCommand, "Queue COMMAND [key=value ...] for computer NAME; prints its id",
       declare_command, "primaryctl command ws-01 collect-logs days=2"},
      {"transfer-request", "Print what to send the vendor to move OLD's seat to NEW (registration, license)",
       declare_transfer_request, "primaryctl transfer-request ws-01 ws-01-new"},
      {"retire-request", "Print what to send the vendor to free NAME's seat (registration, license)",
       declare_retire_request, "primaryctl retire-request ws-01"},
      {"transfer", "Apply the vendor's transfer CODE: the seat moves to the new name, with a new license",
       declare_transfer, "primaryctl transfer \"$(cat transfer-code.txt)\""},
      {"retire", "Apply the vendor's retire CODE: the computer's seat is freed",
       declare_retire, "primaryctl retire \"$(cat retire-code.txt)\""},
      {field::kStatus, "Serial, license counts, version, uptime and workers", declare_status,
       "primaryctl status\n"
       "primaryctl status --json"},
      {"computers", "Table of computers: COMPUTER STATE LAST-SEEN VERSION, all pages; --csv/--jsonl export",
       declare_computers, "primaryctl computers --state lost --sort last-seen --limit 20\n"
                          "primaryctl computers --csv > fleet.csv"},
      {field::kComputer, "A computer's license and its recent activity", declare_computer,
       "primaryctl computer ws-01"},
      {opname::kHistory, "The fleet's history: state and counts per hour or day", declare_history,
       "primaryctl history --resolution day --from 2026-11-01"},
      {"log", "Activity log, one line per event (--follow keeps polling)", declare_log,
       "primaryctl log --type license.reserved,client.lost --limit 50\n"
       "primaryctl log --follow\n"
       "primaryctl log --actor alice\n"
       "primaryctl log verify --file activity.2.log --file activity.1.log --file activity.log"},
      {"events", "Live events from the event stream (--since: catch up from the log first)",
       declare_events, "primaryctl events --since 1714564800000-0 --count 10"},
      {"firewall", "Ports to open and rules per firewall tool; --apply [--yes] runs them",
       declare_firewall, "primaryctl firewall --tool nft\nprimaryctl firewall --apply --yes"},
      {"updates", "Releases: list, sync, import BUNDLE, approve/hold COMPONENT VERSION, download",
       declare_updates,
       "primaryctl updates list\n"
       "primaryctl updates approve client 2.1.0 --percent 30\n"
       "primaryctl updates download client 2.1.0 --out client-2.1.0.bin --vendor-key vendor.pub"},
      {"backup", "On the server's host: state, keys and artifacts in one file (--out FILE)", declare_backup,
       "primaryctl backup --data-dir /var/lib/primary --out primary.backup"},
      {"web-password", "Set the web console's admin password (stdin, or asked twice on a terminal)",
       declare_web_password, "primaryctl web-password --data-dir /var/lib/primary < password.txt"},
  };
  return table;
}

Action add_command(CLI::App& app, const Command& c) {
  CLI::App* sub = app.add_subcommand(c.name, c.help);
  Action action = c.declare(*sub);
  sub->add_flag("--json")->description(
      "Print JSON on stdout instead of tables and lines (errors stay on stderr)");
  std::string footer;
  if (c.example && *c.example) {
    const std::string text = c.example;
    footer = text.find('\n') == std::string::npos ? "Example:\n" : "Examples:\n";
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      footer += "  " + text.substr(start, end - start) + "\n";
      start = end + 1;
    }
    sub->footer(footer);
  }
  for (CLI::App* nested : sub->get_subcommands([](CLI::App*) { return true; })) {
    nested->fallthrough();  // `keys create --json`
    if (!footer.empty()) nested->footer(footer);
  }
  return action;
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

Result<Value::Map> parse_pairs(const std::vector<std::string>& args) {
  Value::Map out;
  for (const auto& arg : args) {
    const auto eq = arg.find('=');
    if (eq == std::string::npos || eq == 0)
      return Error{Code::BadRequest, "bad field '" + arg + "': expected key=value"};
    std::string key = arg.substr(0, eq);
    if (std::any_of(out.begin(), out.end(), [&](const auto& kv) { return kv.first == key; }))
      return Error{Code::BadRequest, "field '" + key + "' given twice"};
    out.emplace_back(std::move(key), parse_scalar(std::string_view(arg).substr(eq + 1)));
  }
  return out;
}

Result<Value::Map> parse_fields(const std::vector<std::string>& args) {
  for (const auto& arg : args)
    if (arg.starts_with("op="))
      return Error{Code::BadRequest, "'op' is the OP argument, not a field"};
  return parse_pairs(args);
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
  auto raw = ctx.send(svc::kBrokerControl, encode_request(opname::kWorkers));
  if (!raw) return report_transport_error(ctx, raw.error());
  if (auto reply = unpack_map(*raw)) {
    broker_answered = reply_ok(*reply);
    if (const Value* s = reply->find(field::kServices); broker_answered && s) counts = *s;
  }

  std::vector<std::vector<std::string>> rows = {{"SERVICE", "STATE", "WORKERS"}};
  Value::Array items;  // --json: {service, state, workers (null: not known)}
  auto add = [&](const std::string& name, bool up, std::optional<int64_t> workers) {
    rows.push_back({name, up ? "up" : "down", workers ? std::to_string(*workers) : "-"});
    items.emplace_back(Value::Map{{"service", Value(name)},
                                  {field::kState, Value(up ? "up" : "down")},
                                  {"workers", workers ? Value(*workers) : Value()}});
  };
  for (const auto& name : declared_services()) {
    if (name == svc::kBrokerControl) {
      add(name, broker_answered, std::nullopt);
      continue;
    }
    auto status = ctx.send(svc::kMmiService, name);
    if (!status) return report_transport_error(ctx, status.error());
    const Value* n = counts.find(name);
    std::optional<int64_t> workers;
    if (n && n->is_int()) workers = n->as_int();
    else if (broker_answered) workers = 0;
    add(name, *status == "200", workers);
  }
  if (ctx.json) print_json(ctx, Value(std::move(items)));
  else print_table(ctx.out, rows);
  return kOk;
}

Host real_host() {
  Host h;
  h.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  h.now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  h.on_path = executable_on_path;
  h.shell = run_shell;
  h.in = []() -> std::istream& { return std::cin; };
  return h;
}

Result<std::string> events_endpoint_for(const std::string& front) {
  const auto colon = front.rfind(':');
  const auto scheme = front.find("://");
  int port = 0;
  if (colon != std::string::npos && scheme != std::string::npos && colon > scheme + 2) {
    const char* begin = front.data() + colon + 1;
    const char* end = front.data() + front.size();
    auto [p, ec] = std::from_chars(begin, end, port);
    if (ec != std::errc() || p != end) port = 0;
  }
  if (port <= 0 || port >= 65535)
    return Error{Code::BadRequest,
                 "cannot derive the event endpoint from '" + front + "'; give --events"};
  return front.substr(0, colon + 1) + std::to_string(port + 1);
}

Result<std::string> resolve_server_key(const std::string& value) {
  struct stat st;
  if (::stat(value.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    if (value.ends_with(".key"))
      return Error{Code::BadRequest, "--server-key: " + value +
                                         " is a secret key file; give the server's public key "
                                         "(DATA/keys/server.pub)"};
    auto key = read_curve_public(value);
    if (!key) return Error{Code::BadRequest, "--server-key: " + key.error().message};
    return key;
  }
  if (valid_z85_key(value)) return value;
  return Error{Code::BadRequest, "--server-key: '" + value +
                                     "' is neither a readable key file nor a Z85 public key"};
}

int run(int argc, char** argv) {
  Config cfg("primaryctl", "Admin command line of the Primary Server");
  cfg.add_string("server", std::string(kDefaultServer),
                 "Server front door endpoint(s), comma-separated, tried in turn");
  cfg.add_int("timeout-ms", 3000, 1, 600000, "How long to wait for each server tried");
  cfg.add_string("server-key", "",
                 "Server CURVE public key: a Z85 key file (DATA/keys/server.pub) or the key "
                 "itself; turns CURVE on");
  cfg.add_string("client-key", "",
                 "This admin's CURVE secret key file (from `keys create`); without it a fresh "
                 "key, which has the client role only");
  cfg.add_string("events", "",
                 "Event stream endpoint (default: the first --server endpoint, port + 1)");
  CLI::App& app = cfg.app();
  app.fallthrough();  // global flags may follow the subcommand
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, Action>> actions;
  for (const auto& c : commands()) {
    Action action = add_command(app, c);
    actions.emplace_back(app.get_subcommand(c.name), std::move(action));
  }
  cfg.parse(argc, argv);

  ClientOptions options;
  options.endpoints = split_list(cfg.str("server"));
  if (options.endpoints.empty()) cfg.fail("--server names no endpoint");
  options.timeout_ms = static_cast<int>(cfg.integer("timeout-ms"));
  options.attempts = static_cast<int>(options.endpoints.size());
  if (!cfg.str("server-key").empty()) {
    auto key = resolve_server_key(cfg.str("server-key"));
    if (!key) cfg.fail(key.error().message);
    options.server_key = *key;
    // One identity for every connection of this run.
    const CurveKeypair kp = curve_keypair();
    options.public_key = kp.public_key;
    options.secret_key = kp.secret_key;
  }
  if (!cfg.str("client-key").empty()) {
    if (options.server_key.empty())
      cfg.fail("--client-key needs --server-key (the server's public key) to be of use");
    if (cfg.str("client-key").ends_with(".pub"))
      cfg.fail("--client-key: " + cfg.str("client-key") +
               " is a public key file; give the secret one (NAME.key from `keys create`)");
    auto secret = read_curve_secret(cfg.str("client-key"));
    if (!secret) cfg.fail("--client-key: " + secret.error().message);
    options.secret_key = *secret;
    options.public_key = curve_public_of(*secret);
  }
  std::string events = cfg.str("events");

  zmq::context_t zctx(1);
  MdpClient client(zctx, options);
  Context ctx{[&](const std::string& service, const std::string& body) {
                return client.request(service, body);
              },
              std::cout, std::cerr};
  ctx.send_many = [&](const std::string& service, const std::vector<std::string>& bodies) {
    return send_pipelined(zctx, options, service, bodies);
  };
  ctx.subscribe = [&]() -> Result<NextEvent> {
    if (events.empty()) {
      auto derived = events_endpoint_for(options.endpoints.front());
      if (!derived) return derived.error();
      events = *derived;
    }
    // A bind address as the server is configured ("tcp://*:16771") means this host.
    if (auto pos = events.find("//*:"); pos != std::string::npos) events.replace(pos, 4, "//127.0.0.1:");
    return subscribe_events(zctx, options, events);
  };
  for (auto& [sub, action] : actions)
    if (sub->parsed()) {
      ctx.json = sub->count("--json") > 0;
      return action(ctx);
    }
  return kUsage;
}

}  // namespace primary::ctl
