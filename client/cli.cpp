#include "cli.hpp"

#include <CLI/CLI.hpp>

#include <signal.h>

#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/client.hpp"
#include "common/process.hpp"
#include "common/schema.hpp"
#include "primary/client/agent.hpp"

namespace primary::client::cli {
namespace {

using namespace std::chrono_literals;

struct Args {
  std::string setup, servers, computer, license, lease_key, server_key, version = PRIMARY_VERSION;
  int simulate = 0;
  std::string prefix = "SIM";
  std::string licenses_file;
  bool reserve = false;
  double time_scale = 1.0, duration_s = 0, jitter = 0.10, ramp_s = 0;
  int timeout_ms = 6000, attempts = 0, threads = 4;
};

[[noreturn]] void usage_error(const std::string& line) {
  std::fprintf(stderr, "primary-client: %s\n", line.c_str());
  std::exit(2);
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

std::mutex print_mu;
// One line per state change: time, computer, old -> new, reason, and
// whether the agent may upload ("upload on", "upload off (why)").
void print_change(const StateChange& c) {
  const std::string line = iso_time(c.at) + " " + c.computer + " " + std::string(to_string(c.from)) +
                           " -> " + std::string(to_string(c.to)) + " " + c.reason + "; " +
                           (c.upload ? "upload on" : "upload off (" + c.no_upload + ")") + "\n";
  std::lock_guard lock(print_mu);
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
}

// NAME LICENSE per line; '#' starts a comment line. Names compare upper-case.
std::map<std::string, std::string> read_licenses(const std::string& path) {
  std::ifstream in(path);
  if (!in) usage_error(path + ": cannot be read");
  std::map<std::string, std::string> out;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::istringstream words(line);
    std::string name, license, extra;
    if (!(words >> name) || name[0] == '#') continue;
    if (!(words >> license) || (words >> extra) || !valid_computer_name(name))
      usage_error(path + ":" + std::to_string(number) + ": expected 'NAME LICENSE'");
    out[normalize_computer_name(name)] = license;
  }
  return out;
}

// Reserves a license for each name through license.control (admin peers
// only); fills `licenses` and, when empty, `lease_key`. False after printing why.
bool reserve_all(const Args& a, const std::vector<std::string>& endpoints, const std::vector<std::string>& names,
                 std::map<std::string, std::string>& licenses, std::string& lease_key) {
  zmq::context_t ctx(1);
  ClientOptions o;
  o.endpoints = endpoints;
  o.timeout_ms = a.timeout_ms;
  o.attempts = static_cast<int>(std::max<size_t>(3, 2 * endpoints.size()));
  o.server_key = a.server_key;
  MdpClient mdp(ctx, o);
  auto fail = [](const std::string& what, const Result<Value>& r) {
    const std::string why = !r ? r.error().message : reply_str(*r, field::kCode) + ": " + reply_str(*r, field::kMessage);
    std::fprintf(stderr, "primary-client: %s: %s\n", what.c_str(), why.c_str());
    return false;
  };
  for (const auto& name : names) {
    auto r = mdp.call(svc::kLicenseControl, opname::kReserve, {{field::kComputer, Value(name)}});
    if (!r || reply_str(*r, field::kLicense).empty()) return fail("reserve " + name, r);
    licenses[name] = reply_str(*r, field::kLicense);
  }
  if (lease_key.empty() && !names.empty()) {
    auto r = mdp.call(svc::kLicenseControl, opname::kSetupInfo, {{field::kComputer, Value(names.front())}});
    if (!r || reply_str(*r, field::kLeaseKey).empty()) return fail("setup_info " + names.front(), r);
    lease_key = reply_str(*r, field::kLeaseKey);
    if (const Value* set = r->find(field::kLeaseKeys); set && set->is_array() && !set->as_array().empty()) {
      lease_key.clear();  // the whole set, as a setup file's lease_keys
      for (const Value& k : set->as_array())
        if (k.is_str()) lease_key += (lease_key.empty() ? "" : ",") + k.as_str();
    }
  }
  return true;
}

// Prints the outcome of an agent's first contact when it did not change
// the state (an agent that stays unlicensed says why, once), and a contact
// that turned uploads on or off without changing the state (a licensed
// agent whose lease no longer verifies, or verifies again).
struct Tracked {
  std::unique_ptr<LicenseAgent> agent;
  bool first_contact_done = false;
  bool upload = false;
};

void step(Tracked& t, const std::shared_ptr<Clock>& clock) {
  const LicenseState before = t.agent->state();
  if (!t.agent->step()) return;
  const std::string off = t.agent->upload_off();
  const bool upload = off.empty();
  const bool first = !t.first_contact_done;
  t.first_contact_done = true;
  if (t.agent->state() == before && (first || upload != t.upload))
    print_change({clock->wall(), t.agent->computer(), before, before, t.agent->reason(), upload, off});
  t.upload = upload;
}

}  // namespace

int run(int argc, char** argv) {
  Args a;
  CLI::App app("Primary Server client agent: licensing state machine (DESIGN.md point 3)", "primary-client");
  app.add_option("--setup", a.setup, "Setup file (JSON from `primaryctl setup-info`)");
  app.add_option("--server", a.servers, "Server endpoints, comma-separated, in failover order");
  app.add_option("--computer", a.computer, "This computer's name");
  app.add_option("--license", a.license, "This computer's license");
  app.add_option("--lease-key", a.lease_key,
                 "Server's public lease key (base64url) to verify leases; a key set: keys separated by commas");
  app.add_option("--server-key", a.server_key, "Server's CURVE public key (Z85); enables CURVE");
  app.add_option("--client-version", a.version, "Version reported in heartbeats");
  app.add_option("--simulate", a.simulate, "Run N agents named PREFIX-000001...")->check(CLI::Range(1, 1000000));
  app.add_option("--prefix", a.prefix, "Name prefix for --simulate");
  app.add_option("--licenses", a.licenses_file, "For --simulate: file of 'NAME LICENSE' lines");
  app.add_flag("--reserve", a.reserve, "For --simulate: reserve the licenses first (admin peers only)");
  app.add_option("--time-scale", a.time_scale, "Multiply every interval by F (0.001: 4 h -> 14.4 s)")
      ->check(CLI::Range(1e-6, 1e6));
  app.add_option("--duration", a.duration_s, "Stop after S seconds (0: on SIGINT, SIGTERM or SIGHUP)")->check(CLI::Range(0.0, 1e9));
  app.add_option("--jitter", a.jitter, "Random spread of each interval, as a fraction")->check(CLI::Range(0.0, 0.5));
  app.add_option("--ramp", a.ramp_s, "For --simulate: spread first contacts over S seconds")->check(CLI::Range(0.0, 1e6));
  app.add_option("--timeout-ms", a.timeout_ms, "Per-attempt request timeout")->check(CLI::Range(10, 600000));
  app.add_option("--attempts", a.attempts, "Attempts per contact across endpoints (0: auto)")->check(CLI::Range(0, 1000));
  app.add_option("--threads", a.threads, "For --simulate: threads driving the agents")->check(CLI::Range(1, 256));
  app.footer(
      "Prints one line per state change: TIME COMPUTER OLD -> NEW REASON. Exit code 0 when every agent "
      "ended licensed, 1 otherwise, 2 for a bad command line.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      app.exit(e);
      return 0;
    }
    usage_error(e.what());
  }

  install_stop_signals();
  std::vector<std::string> endpoints = split_list(a.servers);
  if (!a.setup.empty()) {
    auto setup = load_setup(a.setup);
    if (!setup) usage_error(setup.error());
    if (endpoints.empty()) endpoints = setup->endpoints;
    if (a.computer.empty()) a.computer = setup->computer;
    if (a.license.empty()) a.license = setup->license;
    if (a.lease_key.empty()) a.lease_key = options_from(*setup).lease_key;
    if (a.server_key.empty()) a.server_key = setup->server_key;
  }
  if (endpoints.empty()) usage_error("no server: give --setup FILE or --server EP[,EP]");

  // Who runs: one computer, or a simulated fleet.
  std::vector<std::pair<std::string, std::string>> fleet;  // name, license
  if (a.simulate == 0) {
    if (a.computer.empty() || a.license.empty()) usage_error("give --computer and --license (or --setup FILE)");
    if (!valid_computer_name(a.computer)) usage_error("--computer: not a computer name (1 to 63 of A-Z a-z 0-9 - _ .)");
    fleet.emplace_back(a.computer, a.license);
  } else {
    if (a.reserve == !a.licenses_file.empty()) usage_error("--simulate needs exactly one of --licenses FILE and --reserve");
    std::vector<std::string> names;
    for (int i = 1; i <= a.simulate; ++i) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "-%06d", i);
      names.push_back(normalize_computer_name(a.prefix + buf));
    }
    if (!valid_computer_name(names.back())) usage_error("--prefix: names like " + names.back() + " are not computer names");
    std::map<std::string, std::string> licenses;
    if (a.reserve) {
      if (!reserve_all(a, endpoints, names, licenses, a.lease_key)) return 1;
    } else {
      licenses = read_licenses(a.licenses_file);
    }
    // A name without a license still runs, and stays unlicensed (NOT_RESERVED or LICENSE_MISMATCH).
    for (const auto& n : names) fleet.emplace_back(n, licenses.count(n) ? licenses[n] : std::string("none"));
  }

  auto clock = system_clock();
  auto transport = zmq_transport({a.server_key, {}, {}});
  std::vector<Tracked> agents;
  agents.reserve(fleet.size());
  for (size_t i = 0; i < fleet.size(); ++i) {
    AgentOptions o;
    o.computer = fleet[i].first;
    o.license = fleet[i].second;
    o.endpoints = endpoints;
    o.lease_key = a.lease_key;
    o.server_key = a.server_key;
    o.version = a.version;
    o.jitter = a.jitter;
    o.time_scale = a.time_scale;
    o.timeout = std::chrono::milliseconds(a.timeout_ms);
    o.attempts = a.attempts;
    if (a.ramp_s > 0 && fleet.size() > 1)
      o.first_contact_delay = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(a.ramp_s * static_cast<double>(i) / static_cast<double>(fleet.size())));
    o.on_state_change = print_change;
    o.on_command = [name = fleet[i].first](const Command& c) -> std::optional<CommandResult> {
      // A demo agent executes nothing; it says so, so the admin sees the command arrived.
      const std::string line = iso_time(std::chrono::system_clock::now()) + " " + name + " command " + c.id +
                               " " + c.command + " " + c.args_json + "\n";
      {
        std::lock_guard lock(print_mu);
        std::fputs(line.c_str(), stdout);
        std::fflush(stdout);
      }
      return CommandResult{false, "primary-client does not execute '" + c.command + "'"};
    };
    agents.push_back({std::make_unique<LicenseAgent>(std::move(o), transport, clock), false});
  }

  // Threads drive their share of the agents, each asleep until the first
  // of its agents' next contacts; the main thread sleeps in sigtimedwait()
  // until a stop signal or the end of --duration. Nothing polls: an idle
  // primary-client wakes only for its agents' contacts.
  std::atomic<bool> stop{false};
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  const size_t nthreads = std::min<size_t>(static_cast<size_t>(a.threads), agents.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < nthreads; ++t)
    threads.emplace_back([&, t] {
      while (!stop.load()) {
        auto wake = clock->now() + std::chrono::hours(24 * 366);
        for (size_t i = t; i < agents.size() && !stop.load(); i += nthreads) {
          step(agents[i], clock);
          wake = std::min(wake, agents[i].agent->next_wakeup());
        }
        std::unique_lock lock(stop_mu);
        stop_cv.wait_until(lock, wake, [&] { return stop.load(); });
      }
    });
  // SIGINT, SIGTERM and SIGHUP stay blocked in every thread
  // (install_stop_signals()); this thread takes them synchronously.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  const auto deadline = clock->now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                           std::chrono::duration<double>(a.duration_s));
  for (;;) {
    if (a.duration_s <= 0) {
      if (sigwaitinfo(&stop_signals, nullptr) > 0) break;
      continue;  // EINTR
    }
    const auto left = deadline - clock->now();
    if (left <= left.zero()) break;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    const timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    if (sigtimedwait(&stop_signals, nullptr, &ts) > 0) break;
  }
  {
    std::lock_guard lock(stop_mu);
    stop = true;
  }
  stop_cv.notify_all();
  for (auto& th : threads) th.join();

  size_t counts[3] = {0, 0, 0};
  for (const auto& t : agents) ++counts[static_cast<int>(t.agent->state())];
  std::fprintf(stderr, "primary-client: %zu agent(s): %zu licensed, %zu lost, %zu unlicensed\n", agents.size(),
               counts[static_cast<int>(LicenseState::licensed)], counts[static_cast<int>(LicenseState::lost)],
               counts[static_cast<int>(LicenseState::unlicensed)]);
  return counts[static_cast<int>(LicenseState::licensed)] == agents.size() ? 0 : 1;
}

}  // namespace primary::client::cli
