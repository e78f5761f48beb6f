// primaryctl subcommands of the license.control service: serial, unlock,
// reservations (pipelined), setup files, management commands and seat
// codes (retire, transfer, and the requests the admin sends the vendor).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>

#include "common/codec.hpp"
#include "common/process.hpp"
#include "common/schema.hpp"
#include "ctl/commands.hpp"

namespace primary::ctl {
namespace {

constexpr const char* kService = svc::kLicenseControl;

}  // namespace

std::vector<std::string> read_names(std::istream& in) {
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    const auto last = line.find_last_not_of(" \t\r");
    names.push_back(line.substr(first, last - first + 1));
  }
  return names;
}

int reserve(Context& ctx, const std::vector<std::string>& names) {
  std::vector<std::string> bodies;
  bodies.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i)
    bodies.push_back(encode_request(
        "reserve", {{field::kComputer, Value(names[i])}, {field::kRid, Value(static_cast<int64_t>(i))}}));
  std::vector<Result<std::string>> replies;
  if (ctx.send_many) {
    replies = ctx.send_many(kService, bodies);
  } else {
    for (const auto& body : bodies) replies.push_back(ctx.send(kService, body));
  }

  int64_t created = 0, existing = 0, refused = 0, unanswered = 0;
  std::vector<std::vector<std::string>> rows = {{"COMPUTER", "LICENSE", "RESULT"}};
  Value::Array items;  // --json: each reply without rid, plus the name asked for
  auto refuse = [&](const std::string& name, const std::string& code, const std::string& message) {
    ++refused;
    rows.push_back({name, "-", code + ": " + message});
    items.emplace_back(Value::Map{{"name", Value(name)}, {field::kOk, Value(false)}, {field::kCode, Value(code)},
                                  {field::kMessage, Value(message)}});
  };
  int64_t reserved = -1, purchased = 0;  // from the reply that saw the most reservations
  auto track = [&](const Value& r) {
    if (r.find(field::kReserved) && r.find(field::kPurchased) && reply_int(r, field::kReserved, 0) >= reserved) {
      reserved = reply_int(r, field::kReserved, 0);
      purchased = reply_int(r, field::kPurchased, 0);
    }
  };
  for (size_t i = 0; i < names.size(); ++i) {
    const Result<std::string>& raw = i < replies.size()
                                         ? replies[i]
                                         : Result<std::string>(Error{Code::Unavailable, "no reply"});
    if (!raw) {
      refuse(names[i], "UNAVAILABLE", raw.error().message);
      ++unanswered;
      continue;
    }
    auto reply = unpack_map(*raw);
    if (!reply) {
      refuse(names[i], "INTERNAL", "malformed reply: " + reply.error().message);
      continue;
    }
    track(*reply);
    if (!reply_ok(*reply)) {
      refuse(names[i], reply_str(*reply, field::kCode), reply_str(*reply, field::kMessage));
      continue;
    }
    const Value* c = reply->find(field::kCreated);
    const bool is_new = c && c->is_bool() && c->as_bool();
    ++(is_new ? created : existing);
    rows.push_back({names[i], reply_str(*reply, field::kLicense), is_new ? field::kCreated : "existing"});
    Value item = without_envelope(*reply);
    item.as_map().insert(item.as_map().begin(), {"name", Value(names[i])});
    item.set(field::kOk, Value(true));
    items.push_back(std::move(item));
  }
  if (ctx.json) {
    print_json(ctx, Value(Value::Map{{field::kItems, Value(std::move(items))},
                                     {field::kCreated, Value(created)},
                                     {"existing", Value(existing)},
                                     {"refused", Value(refused)},
                                     {field::kReserved, reserved >= 0 ? Value(reserved) : Value()},
                                     {field::kPurchased, reserved >= 0 ? Value(purchased) : Value()}}));
  } else {
    print_table(ctx.out, rows);
    ctx.out << "reserved " << created << " new, " << existing << " existing, " << refused
            << " refused";
    if (reserved >= 0) ctx.out << "; " << reserved << " of " << purchased << " licenses in use";
    ctx.out << "\n";
  }
  if (!names.empty() && unanswered == static_cast<int64_t>(names.size())) {
    ctx.err << "primaryctl: no reply from the server\n";
    return kUnreachable;
  }
  if (refused > 0) {
    ctx.err << "primaryctl: " << refused << " of " << names.size() << " names refused\n";
    return kServerError;
  }
  return kOk;
}

Action declare_register(CLI::App& sub) {
  auto serial = std::make_shared<std::string>();
  sub.add_option(field::kSerial, *serial, "The serial number bought from the vendor")->required();
  return [serial](Context& ctx) {
    Answer a = ask(ctx, kService, "registration", {{field::kSerial, Value(*serial)}});
    return print_reply(ctx, a, [&](const Value& r) { ctx.out << reply_str(r, field::kRegistrationCode) << "\n"; });
  };
}

Action declare_registration(CLI::App&) {
  return [](Context& ctx) {
    Answer a = ask(ctx, kService, opname::kRegistration);
    return print_reply(ctx, a, [&](const Value& r) {
      print_table(ctx.out, {{field::kSerial, reply_str(r, field::kSerial)},
                            {"registration code", reply_str(r, field::kRegistrationCode)}});
    });
  };
}

Action declare_unlock(CLI::App& sub) {
  auto code = std::make_shared<std::string>();
  sub.add_option(field::kCode, *code, "The unlock code the vendor issued for this server")->required();
  return [code](Context& ctx) {
    Answer a = ask(ctx, kService, "unlock", {{field::kUnlockCode, Value(*code)}});
    return print_reply(ctx, a, [&](const Value& r) {
      print_table(ctx.out, {{field::kSerial, reply_str(r, field::kSerial)},
                            {field::kPurchased, std::to_string(reply_int(r, field::kPurchased, 0))}});
    });
  };
}

namespace {

// retire and transfer: apply the vendor's seat code.
Action declare_seat_code(CLI::App& sub, const char* op) {
  auto code = std::make_shared<std::string>();
  sub.add_option(field::kCode, *code, "The seat code the vendor issued for this server")->required();
  return [code, op](Context& ctx) {
    Answer a = ask(ctx, kService, op, {{field::kCode, Value(*code)}});
    return print_reply(ctx, a, [&](const Value& r) {
      std::vector<std::vector<std::string>> rows = {{field::kComputer, reply_str(r, field::kComputer)}};
      if (r.find(field::kTo)) {
        rows.push_back({field::kTo, reply_str(r, field::kTo)});
        rows.push_back({"new license", reply_str(r, field::kLicense)});
      }
      rows.push_back({"licenses in use", std::to_string(reply_int(r, field::kReserved, 0)) + " of " +
                                             std::to_string(reply_int(r, field::kPurchased, 0))});
      print_table(ctx.out, rows);
    });
  };
}

// retire-request and transfer-request: what the admin sends the vendor.
Action declare_seat_request(CLI::App& sub, bool transfer) {
  struct Args {
    std::string computer, to;
  };
  auto a = std::make_shared<Args>();
  sub.add_option("old", a->computer, "The computer holding the seat")->required();
  if (transfer) sub.add_option("new", a->to, "The new computer name")->required();
  return [a, transfer](Context& ctx) {
    if (transfer && !valid_computer_name(a->to)) {
      ctx.err << "primaryctl: NEW: expected 1 to 63 of A-Z a-z 0-9 - _ .\n";
      return static_cast<int>(kUsage);
    }
    Answer reg = ask(ctx, kService, opname::kRegistration);
    if (!reg) return reg.exit;
    Answer setup = ask(ctx, kService, opname::kSetupInfo, {{field::kComputer, Value(a->computer)}});
    if (!setup) return setup.exit;
    const std::string registration = reply_str(reg.reply, field::kRegistrationCode);
    const std::string computer = reply_str(setup.reply, field::kComputer);
    const std::string license = reply_str(setup.reply, field::kLicense);
    const std::string to = transfer ? normalize_computer_name(a->to) : std::string();
    if (ctx.json) {
      Value::Map m{{field::kRegistration, Value(registration)},
                   {field::kComputer, Value(computer)},
                   {field::kLicense, Value(license)}};
      if (transfer) m.emplace_back(field::kTo, Value(to));
      print_json(ctx, Value(std::move(m)));
      return static_cast<int>(kOk);
    }
    std::vector<std::vector<std::string>> rows = {
        {"registration", registration}, {field::kComputer, computer}, {field::kLicense, license}};
    if (transfer) rows.push_back({field::kTo, to});
    print_table(ctx.out, rows);
    ctx.out << "vendor: primary-vendor " << (transfer ? "transfer" : "retire") << " --key vendor.key --registration "
            << registration << " --computer " << computer << " --license " << license;
    if (transfer) ctx.out << " --to " << to;
    ctx.out << "\n";
    return static_cast<int>(kOk);
  };
}

}  // namespace

Action declare_retire(CLI::App& sub) { return declare_seat_code(sub, opname::kRetire); }
Action declare_transfer(CLI::App& sub) { return declare_seat_code(sub, opname::kTransfer); }
Action declare_retire_request(CLI::App& sub) { return declare_seat_request(sub, false); }
Action declare_transfer_request(CLI::App& sub) { return declare_seat_request(sub, true); }

Action declare_reserve(CLI::App& sub) {
  struct Args {
    std::vector<std::string> names;
    std::string from;
  };
  auto a = std::make_shared<Args>();
  sub.add_option("names", a->names, "Computer names; - reads them from stdin");
  sub.add_option("--from", a->from,
                 "File of computer names, one a line (blank lines and # comments skipped); "
                 "- for stdin");
  return [a](Context& ctx) {
    std::vector<std::string> names;
    bool given = !a->from.empty();
    auto add_from = [&](std::istream& in) {
      auto more = read_names(in);
      names.insert(names.end(), more.begin(), more.end());
    };
    for (const auto& n : a->names) {
      given = true;
      if (n == "-") add_from(ctx.host.in());
      else names.push_back(n);
    }
    if (a->from == "-") {
      add_from(ctx.host.in());
    } else if (!a->from.empty()) {
      std::ifstream in(a->from);
      if (!in) {
        ctx.err << "primaryctl: cannot read " << a->from << ": " << std::strerror(errno) << "\n";
        return static_cast<int>(kUsage);
      }
      add_from(in);
    }
    if (!given) {
      ctx.err << "primaryctl: reserve: give computer names, --from FILE or - (stdin)\n";
      return static_cast<int>(kUsage);
    }
    return reserve(ctx, names);
  };
}

Action declare_setup_info(CLI::App& sub) {
  struct Args {
    std::string computer, out;
  };
  auto a = std::make_shared<Args>();
  sub.add_option(field::kComputer, a->computer, "Computer name (it must have a reservation)")
      ->required();
  sub.add_option("--out", a->out, "Write the setup file here (mode 0600) instead of stdout");
  return [a](Context& ctx) {
    Answer ans = ask(ctx, kService, "setup_info", {{field::kComputer, Value(a->computer)}});
    if (!ans) return ans.exit;
    // The setup file is the reply without its envelope fields.
    const std::string json = to_json(without_envelope(ans.reply)) + "\n";
    if (a->out.empty()) {
      ctx.out << json;
      return static_cast<int>(kOk);
    }
    if (auto written = write_file_atomic(a->out, json, 0600); !written) {
      ctx.err << "primaryctl: " << written.error().message << "\n";
      return static_cast<int>(kServerError);
    }
    if (ctx.json)
      print_json(ctx, Value(Value::Map{{field::kComputer, Value(reply_str(ans.reply, field::kComputer))},
                                       {"file", Value(a->out)}}));
    else
      ctx.out << "wrote " << a->out << " for " << reply_str(ans.reply, field::kComputer) << "\n";
    return static_cast<int>(kOk);
  };
}

Action declare_command(CLI::App& sub) {
  struct Args {
    std::string computer, command;
    std::vector<std::string> args;
  };
  auto a = std::make_shared<Args>();
  sub.add_option(field::kComputer, a->computer, "Computer name")->required();
  sub.add_option(field::kCommand, a->command, "Command name, as the Client knows it")->required();
  sub.add_option(field::kArgs, a->args,
                 "Arguments as key=value (integers, true, false and null are typed)");
  return [a](Context& ctx) {
    auto args = parse_pairs(a->args);
    if (!args) {
      ctx.err << "primaryctl: " << args.error().message << "\n";
      return static_cast<int>(kUsage);
    }
    Value::Map fields{{field::kComputer, Value(a->computer)}, {field::kCommand, Value(a->command)}};
    if (!args->empty()) fields.emplace_back(field::kArgs, Value(std::move(*args)));
    Answer ans = ask(ctx, kService, field::kCommand, std::move(fields));
    return print_reply(ctx, ans, [&](const Value& r) { ctx.out << reply_str(r, field::kId) << "\n"; });
  };
}

}  // namespace primary::ctl
