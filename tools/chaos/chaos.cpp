#include "tools/chaos/chaos.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/client.hpp"
#include "common/crypto.hpp"
#include "primary/client/agent.hpp"
#include "primary/client/update_agent.hpp"
#include "tools/chaos/procfs.hpp"

namespace primary::chaos {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;
using client::LicenseState;

std::string code_of(const Result<Value>& r) {
  if (!r) return "NO_REPLY";
  return reply_ok(*r) ? "OK" : reply_str(*r, "code");
}

std::unique_ptr<MdpClient> connect(zmq::context_t& ctx, const std::string& front, int timeout_ms) {
  ClientOptions o;
  o.endpoints = {front};
  o.timeout_ms = timeout_ms;
  return std::make_unique<MdpClient>(ctx, o);
}

// Tries `ready` every `step` until it holds or `limit` has passed.
bool eventually(const std::function<bool()>& ready, Ms limit, Ms step) {
  for (const auto deadline = Clock::now() + limit;; std::this_thread::sleep_for(step)) {
    if (ready()) return true;
    if (Clock::now() >= deadline) return false;
  }
}

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

std::string base_name(const std::string& exe) { return std::filesystem::path(exe).filename().string(); }

// What tells that a kind of process serves again.
enum class Probe { heartbeat, reserve, status, update };
struct KindSpec {
  std::string exe;
  // Prefix of the broker services its workers register ("" every service:
  // a new broker must see all workers again); nullopt: not a worker.
  std::optional<std::string> services;
  std::vector<Probe> probes;
};
const std::vector<KindSpec>& kind_specs() {
  static const std::vector<KindSpec> specs = {
      {"primary-broker", "", {Probe::heartbeat}},
      {"primary-licensed", "license", {Probe::heartbeat, Probe::reserve}},
      {"primary-admin", "admin", {Probe::status}},
      {"primary-updater", "update", {Probe::update}},
      {"redis-server", std::nullopt, {Probe::reserve, Probe::heartbeat}},
  };
  return specs;
}
const KindSpec& spec_of(const std::string& kind) {
  for (const auto& s : kind_specs())
    if (s.exe == kind) return s;
  return kind_specs().front();
}

// Counters of one kind of request, bumped by the load threads.
struct Tally {
  std::atomic<int64_t> made{0}, failed{0}, refused{0};
  std::mutex mu;
  std::map<std::string, int64_t> codes;
  void fail(const std::string& code) {
    ++failed;
    std::lock_guard<std::mutex> l(mu);
    ++codes[code];
  }
  Counts counts() {
    std::lock_guard<std::mutex> l(mu);
    return Counts{made.load(), failed.load(), refused.load(), codes};
  }
};

// A kill whose recovery is still being watched.
struct Pending {
  size_t index;  // into State::kills
  Clock::time_point at;
  bool dipped = false;  // the broker's count for the kind's services has moved since the kill
};

}  // namespace

const std::vector<std::string>& victim_kinds() {
  static const std::vector<std::string> kinds = [] {
    std::vector<std::string> out;
    for (const auto& s : kind_specs()) out.push_back(s.exe);
    return out;
  }();
  return kinds;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

double percentile(std::vector<double> sample, double q) {
  if (sample.empty()) return 0;
  std::sort(sample.begin(), sample.end());
  const auto k = static_cast<size_t>(q * static_cast<double>(sample.size() - 1) + 0.5);
  return sample[std::min(k, sample.size() - 1)];
}

// ---------------------------------------------------------------- Report

std::string Counts::text() const {
  std::string out = std::to_string(made) + " made, " + std::to_string(refused) + " refused (cap reached), " +
                    std::to_string(failed) + " failed";
  for (const auto& [c, n] : codes) out += " " + c + "=" + std::to_string(n);
  return out;
}

std::vector<double> Report::recovery_ms(const std::string& kind) const {
  std::vector<double> out;
  for (const auto& k : kills)
    if (k.recovery_ms && (kind.empty() || k.kind == kind)) out.push_back(*k.recovery_ms);
  return out;
}

int Report::unrecovered() const {
  return static_cast<int>(std::count_if(kills.begin(), kills.end(), [](const Kill& k) { return !k.recovery_ms; }));
}

bool Report::invariants_hold() const {
  return start_error.empty() && licensed_first && restored && unrecovered() == 0 && present == acked &&
         mismatches == 0 && over_cap == 0 && max_reserved <= purchased && final_reserved <= purchased &&
         status_reserved >= 0 && status_reserved <= purchased && status_purchased == purchased && relicensed &&
         withdrawn == 0 && bad_hash == 0 && final_download && orphans.empty();
}

std::vector<std::string> Report::lines() const {
  std::vector<std::string> out;
  std::string killed;
  for (const auto& [kind, n] : kills_by_kind) killed += " " + kind + "=" + std::to_string(n);
  out.push_back(std::to_string(static_cast<int>(fault_seconds)) + " s of faults, " + std::to_string(kills.size()) +
                " SIGKILLs:" + killed + "; " + std::to_string(processes_seen) + " processes seen");
  const auto rec = recovery_ms();
  out.push_back("recovery after a kill: p50 " + std::to_string(std::llround(percentile(rec, 0.5))) + " ms, p99 " +
                std::to_string(std::llround(percentile(rec, 0.99))) + " ms, max " +
                std::to_string(std::llround(percentile(rec, 1.0))) + " ms; " +
                std::to_string(unrecovered()) + " not recovered; all kinds serving after the faults: " +
                (restored ? "yes" : "NO"));
  for (const auto& [kind, counts] : requests) out.push_back(kind + ": " + counts.text());
  out.push_back("downloads completed with the right hash: " + std::to_string(downloads_completed) + ", wrong hash: " +
                std::to_string(bad_hash) + "; after the faults: " +
                (final_download ? "ok" : "FAILED " + final_download_error));
  out.push_back("simulated Clients: licensed before the faults " + std::string(licensed_first ? "yes" : "NO") +
                ", went lost " + std::to_string(client_lost) + " times, withdrawn " + std::to_string(withdrawn) +
                (first_withdrawn.empty() ? "" : " (" + first_withdrawn + ")") + "; licensed again " +
                std::to_string(relicensed_ms) + " ms after settling (bound " + std::to_string(retry_bound_ms) +
                " ms): " + (relicensed ? "yes" : "NO " + not_licensed));
  out.push_back("acknowledged reservations " + std::to_string(acked) + ", present with the same license " +
                std::to_string(present) + (first_wrong.empty() ? "" : " (first wrong: " + first_wrong + ")") +
                "; mismatching replies " + std::to_string(mismatches) + "; max reserved seen " +
                std::to_string(max_reserved) + " of " + std::to_string(purchased) + ", replies over the cap " +
                std::to_string(over_cap) + "; status: " + std::to_string(status_reserved) + " reserved of " +
                std::to_string(status_purchased));
  std::string first_orphans;
  for (size_t i = 0; i < orphans.size() && i < 5; ++i) first_orphans += " " + std::to_string(orphans[i]);
  out.push_back("orphans after SIGTERM: " + std::to_string(orphans.size()) + first_orphans);
  return out;
}

// ---------------------------------------------------------------- Run

struct Run::State {
  State(zmq::context_t& c, Target target, Options options)
      : ctx(c), t(std::move(target)), o(std::move(options)), rng(o.seed) {}

  zmq::context_t& ctx;
  Target t;
  Options o;
  Report r;
  std::mt19937_64 rng;  // the kills: which and when

  // The ledger of acknowledged reservations.
  std::mutex mu;                             // guards acked, names
  std::map<std::string, std::string> acked;  // name -> license
  std::vector<std::string> names;            // acked's keys, for picking repeats
  std::atomic<int64_t> max_reserved{0};
  std::atomic<int> mismatches{0}, over_cap{0};

  // The simulated Clients.
  std::vector<std::pair<std::string, std::string>> fleet;  // computer, license
  std::vector<std::unique_ptr<client::LicenseAgent>> agents;
  std::atomic<bool> stop_agents{false};
  std::vector<std::thread> agent_threads;
  std::atomic<int> withdrawn{0};
  std::atomic<int64_t> went_lost{0};
  std::mutex agents_mu;  // guards first_withdrawn
  std::string first_withdrawn;

  // The load.
  std::atomic<bool> stop_load{false};
  std::vector<std::thread> load;
  Tally reserves, heartbeats, statuses, downloads;
  std::atomic<int> completed{0}, bad_hash{0};
  client::UpdateOptions uo;
  std::optional<client::UpdateInfo> release;

  // The monitor: processes seen, recovery of each kill.
  std::atomic<bool> stop_monitor{false};
  std::thread monitor;
  std::mutex seen_mu;
  std::set<pid_t> seen;
  std::mutex kills_mu;  // guards kills, pending
  std::vector<Kill> kills;
  std::vector<Pending> pending;
  std::map<std::string, size_t> base_procs;      // kind -> processes before the faults
  std::map<std::string, int64_t> base_services;  // service -> worker connections before the faults
  Clock::time_point fault_start, settled;

  void saw_reserved(const Value& v) {
    const int64_t n = reply_int(v, "reserved");
    int64_t m = max_reserved.load();
    while (n > m && !max_reserved.compare_exchange_weak(m, n)) {
    }
    const int64_t p = reply_int(v, "purchased");
    if (p >= 0 && n > p) ++over_cap;
  }
  void ack(const std::string& name, const std::string& license) {
    std::lock_guard<std::mutex> l(mu);
    auto [it, fresh] = acked.emplace(name, license);
    if (fresh) names.push_back(name);
    else if (it->second != license) ++mismatches;
  }
  // A random acknowledged reservation.
  std::pair<std::string, std::string> pick(std::mt19937& g) {
    std::lock_guard<std::mutex> l(mu);
    const std::string& name = names[g() % names.size()];
    return {name, acked[name]};
  }
  bool all_licensed() const {
    return std::all_of(agents.begin(), agents.end(),
                       [](const auto& a) { return a->state() == LicenseState::licensed; });
  }
  void say(const std::string& line) const {
    if (o.progress) o.progress(line);
  }

  // ---- load threads

  void reserve_loop(int thread) {
    std::mt19937 g(static_cast<uint32_t>(o.seed) + 1000 + static_cast<uint32_t>(thread));
    auto c = connect(ctx, t.front, 1000);
    for (int i = 0; !stop_load.load(); ++i) {
      std::string name, expected;
      if (g() % 3 == 0) {
        std::tie(name, expected) = pick(g);
      } else {
        name = "R" + std::to_string(thread) + "-" + std::to_string(i);
      }
      ++reserves.made;
      auto r = c->call("license.control", "reserve", {{"computer", Value(name)}});
      if (r && r->find("reserved")) saw_reserved(*r);
      if (r && reply_ok(*r)) {
        ack(name, reply_str(*r, "license"));
        const Value* created = r->find("created");
        if (!expected.empty() && created && created->is_bool() && created->as_bool()) ++mismatches;
        continue;
      }
      if (r && reply_str(*r, "code") == "NO_LICENSES_LEFT") {
        ++reserves.refused;
        std::this_thread::sleep_for(5ms);
      } else {
        reserves.fail(code_of(r));
      }
      if (!r) c = connect(ctx, t.front, 1000);
    }
  }

  void heartbeat_loop() {  // plain heartbeats of acknowledged computers
    std::mt19937 g(static_cast<uint32_t>(o.seed) + 7);
    auto c = connect(ctx, t.front, 1000);
    while (!stop_load.load()) {
      const auto [name, license] = pick(g);
      ++heartbeats.made;
      auto r = c->call("license", "heartbeat", {{"computer", Value(name)}, {"license", Value(license)}});
      if (!r || !reply_ok(*r)) {
        heartbeats.fail(code_of(r));
        if (!r) c = connect(ctx, t.front, 1000);
      } else if (reply_str(*r, "status") != "licensed") {
        heartbeats.fail("status " + reply_str(*r, "status") + " " + reply_str(*r, "reason"));
      }
      std::this_thread::sleep_for(10ms);
    }
  }

  void status_loop() {  // the admin's status page
    auto c = connect(ctx, t.front, 1000);
    while (!stop_load.load()) {
      ++statuses.made;
      auto r = c->call("admin", "status");
      if (r && reply_ok(*r)) {
        saw_reserved(*r);
      } else {
        statuses.fail(code_of(r));
        if (!r) c = connect(ctx, t.front, 1000);
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  // A Client downloading the release over and over; a broken download is
  // resumed from its partial file by the next attempt.
  void download_loop() {
    client::UpdateAgent agent(uo);
    const std::string out = t.scratch_dir + "/chaos-download.bin";
    while (!stop_load.load()) {
      ++downloads.made;
      auto got = agent.download(*release, out);
      if (!got) {
        downloads.fail("interrupted");
        std::this_thread::sleep_for(100ms);
        continue;
      }
      if (sha256_file_hex(out).value_or("") == t.sha256) ++completed;
      else ++bad_hash;
      ::unlink(out.c_str());
    }
  }

  // ---- the monitor

  // One request of a probe kind; true when it was served.
  bool probe(MdpClient& c, Probe p) {
    const auto& [name, license] = fleet.front();
    switch (p) {
      case Probe::heartbeat: {
        auto r = c.call("license", "heartbeat", {{"computer", Value(name)}, {"license", Value(license)}});
        return r && reply_ok(*r) && reply_str(*r, "status") == "licensed";
      }
      case Probe::reserve: {
        auto r = c.call("license.control", "reserve", {{"computer", Value(name)}});
        return r && reply_ok(*r) && reply_str(*r, "license") == license;
      }
      case Probe::status: return code_of(c.call("admin", "status")) == "OK";
      case Probe::update:
        return code_of(c.call("update", "check", {{"component", Value(t.component)}, {"version", Value("0.0.1")}})) ==
               "OK";
    }
    return false;
  }

  // Worker connections per service, as the broker counts them.
  static std::optional<std::map<std::string, int64_t>> services(MdpClient& c) {
    auto r = c.call("broker.control", "workers");
    const Value* s = r && reply_ok(*r) ? r->find("services") : nullptr;
    if (!s || !s->is_map()) return std::nullopt;
    std::map<std::string, int64_t> out;
    for (const auto& [name, n] : s->as_map()) out[name] = n.is_int() ? n.as_int() : 0;
    return out;
  }

  // Processes of each victim kind among the supervisor's children; `alive`
  // gets their pids (zombies included: not yet reaped, not yet replaced).
  std::map<std::string, size_t> kinds_running(const std::vector<ProcInfo>& tree, std::set<pid_t>* alive) const {
    std::map<std::string, size_t> out;
    for (const auto& p : tree) {
      if (p.ppid != t.supervisor) continue;
      if (alive) alive->insert(p.pid);
      if (p.state != 'Z') ++out[base_name(p.exe)];
    }
    return out;
  }

  // Whether the kind is back: processes, worker connections, and its probes.
  // `dipped` is the Pending's flag (nullptr: no kill to relate to).
  bool serving(const KindSpec& spec, const std::map<std::string, size_t>& running,
               const std::optional<std::map<std::string, int64_t>>& workers, bool* dipped, MdpClient& c,
               std::map<Probe, bool>& probed) {
    const auto want = base_procs.find(spec.exe);
    const auto have = running.find(spec.exe);
    bool good = want != base_procs.end() && have != running.end() && have->second == want->second;
    if (spec.services) {
      if (!workers) {
        good = false;
        if (dipped) *dipped = true;
      } else {
        for (const auto& [service, n] : base_services) {
          if (service.rfind(*spec.services, 0) != 0) continue;
          const auto it = workers->find(service);
          if ((it == workers->end() ? 0 : it->second) == n) continue;
          good = false;
          if (dipped) *dipped = true;
        }
      }
    }
    for (Probe p : spec.probes) {
      if (!good) break;
      if (p == Probe::update && t.component.empty()) continue;
      auto it = probed.find(p);
      if (it == probed.end()) it = probed.emplace(p, probe(c, p)).first;
      good = it->second;
    }
    return good;
  }

  void check_recoveries(const std::vector<ProcInfo>& tree, MdpClient& c) {
    struct Open {
      Pending p;
      std::string kind;
      pid_t victim;
    };
    std::vector<Open> open;
    {
      std::lock_guard<std::mutex> l(kills_mu);
      for (const auto& p : pending) open.push_back({p, kills[p.index].kind, kills[p.index].pid});
    }
    if (open.empty()) return;
    std::set<pid_t> alive;
    const auto running = kinds_running(tree, &alive);
    const auto workers = services(c);
    std::map<Probe, bool> probed;  // each probe at most once a round
    std::map<size_t, std::optional<double>> done;
    for (auto& k : open) {
      const KindSpec& spec = spec_of(k.kind);
      bool good = !alive.count(k.victim) && serving(spec, running, workers, &k.p.dipped, c, probed);
      // Without a visible change the broker may still count the dead
      // worker's connections: only their expiry makes the count trustworthy.
      const auto now = Clock::now();
      if (good && spec.services && !k.p.dipped && now - k.p.at < o.worker_expiry) good = false;
      if (good) done[k.p.index] = ms_between(k.p.at, now);
      else if (now - k.p.at > o.recovery_limit) done[k.p.index] = std::nullopt;
    }
    std::lock_guard<std::mutex> l(kills_mu);
    for (const auto& k : open)
      for (auto& p : pending)
        if (p.index == k.p.index) p.dipped = k.p.dipped;
    for (const auto& [index, ms] : done) {
      kills[index].recovery_ms = ms;
      std::erase_if(pending, [index = index](const Pending& p) { return p.index == index; });
      if (!ms)
        say("kill of " + kills[index].kind + " pid " + std::to_string(kills[index].pid) + " not recovered within " +
            std::to_string(o.recovery_limit.count()) + " ms");
    }
  }

  void monitor_loop() {
    auto c = connect(ctx, t.front, 1000);
    while (!stop_monitor.load()) {
      const auto round = Clock::now();
      const auto tree = descendants_of(t.supervisor);
      {
        std::lock_guard<std::mutex> l(seen_mu);
        for (const auto& p : tree) seen.insert(p.pid);
      }
      check_recoveries(tree, *c);
      std::this_thread::sleep_until(round + 50ms);
    }
  }

  // Every kind at its strength before the faults, and serving.
  bool all_serving(MdpClient& c) {
    const auto running = kinds_running(descendants_of(t.supervisor), nullptr);
    const auto workers = services(c);
    std::map<Probe, bool> probed;
    for (const auto& [kind, n] : base_procs)
      if (!serving(spec_of(kind), running, workers, nullptr, c, probed)) return false;
    return true;
  }

  void stop_threads() {
    stop_load = true;
    for (auto& th : load)
      if (th.joinable()) th.join();
    stop_agents = true;
    for (auto& th : agent_threads)
      if (th.joinable()) th.join();
    stop_monitor = true;
    if (monitor.joinable()) monitor.join();
  }
};

Run::Run(zmq::context_t& ctx, Target target, Options options)
    : s_(std::make_unique<State>(ctx, std::move(target), std::move(options))) {
  s_->r.purchased = s_->t.purchased;
}

Run::~Run() { s_->stop_threads(); }

const Report& Run::report() const { return s_->r; }

bool Run::start() {
  State& s = *s_;
  auto admin = connect(s.ctx, s.t.front, 2000);
  s.monitor = std::thread([&s] { s.monitor_loop(); });

  // The release the download loop takes, as a Client sees it.
  if (!s.t.component.empty()) {
    s.uo.endpoints = {s.t.front};
    s.uo.vendor_key = s.t.vendor_key;
    while (!s.uo.vendor_key.empty() && std::isspace(static_cast<unsigned char>(s.uo.vendor_key.back())))
      s.uo.vendor_key.pop_back();
    s.uo.timeout = Ms(1000);
    s.uo.attempts = 4;
    s.uo.window = 4;
    eventually([&] {
      auto offer = client::UpdateAgent(s.uo).check(s.t.component, "0.0.1");
      if (offer && offer->has_value()) s.release = **offer;
      return s.release.has_value();
    }, 10s, 100ms);
    if (!s.release) {
      s.r.start_error = "no update offered for " + s.t.component;
      return false;
    }
  }

  // The simulated Clients: reserved first, then licensed before any fault.
  for (int i = 0; i < s.o.clients; ++i) {
    const std::string name = "PC-" + std::to_string(i);
    std::optional<Value> r;
    eventually([&] {
      auto got = admin->call("license.control", "reserve", {{"computer", Value(name)}});
      if (got && reply_ok(*got)) r = *got;
      return r.has_value();
    }, 10s, 50ms);
    if (!r) {
      s.r.start_error = "cannot reserve " + name;
      return false;
    }
    s.ack(name, reply_str(*r, "license"));
    s.saw_reserved(*r);
    s.fleet.emplace_back(name, reply_str(*r, "license"));
  }
  auto transport = client::zmq_transport();
  for (const auto& [name, license] : s.fleet) {
    client::AgentOptions a;
    a.computer = name;
    a.license = license;
    a.endpoints = {s.t.front};
    a.unlicensed_interval = s.o.unlicensed_interval;
    a.lost_interval = s.o.lost_interval;
    a.timeout = s.o.contact_timeout;
    a.attempts = s.o.contact_attempts;
    a.seed = s.o.seed + s.agents.size() + 1;
    a.on_state_change = [&s](const client::StateChange& c) {
      if (c.to == LicenseState::lost) ++s.went_lost;
      if (c.from == LicenseState::licensed && c.to == LicenseState::unlicensed) {
        ++s.withdrawn;
        std::lock_guard<std::mutex> l(s.agents_mu);
        if (s.first_withdrawn.empty()) s.first_withdrawn = c.computer + ": " + c.reason;
      }
    };
    s.agents.push_back(std::make_unique<client::LicenseAgent>(a, transport));
  }
  for (auto& a : s.agents) s.agent_threads.emplace_back([&s, p = a.get()] { p->run(s.stop_agents); });
  s.r.licensed_first = eventually([&] { return s.all_licensed(); }, 15s, 50ms);

  for (int t = 0; t < s.o.reserve_threads; ++t) s.load.emplace_back([&s, t] { s.reserve_loop(t); });
  s.load.emplace_back([&s] { s.heartbeat_loop(); });
  s.load.emplace_back([&s] { s.status_loop(); });
  if (s.release) s.load.emplace_back([&s] { s.download_loop(); });
  std::this_thread::sleep_for(s.o.warmup);
  return true;
}

void Run::faults() {
  State& s = *s_;
  // The strength of every kind before the faults.
  auto c = connect(s.ctx, s.t.front, 1000);
  for (const auto& [kind, n] : s.kinds_running(descendants_of(s.t.supervisor), nullptr))
    if (std::count(victim_kinds().begin(), victim_kinds().end(), kind)) s.base_procs[kind] = n;
  std::optional<std::map<std::string, int64_t>> workers;
  eventually([&] { return (workers = State::services(*c)).has_value(); }, 10s, 100ms);
  if (workers) s.base_services = *workers;

  const auto interval = [&] {
    const auto span = static_cast<uint64_t>(std::max<int64_t>(0, (s.o.kill_max - s.o.kill_min).count()));
    return s.o.kill_min + Ms(static_cast<int64_t>(s.rng() % (span + 1)));
  };
  s.fault_start = Clock::now();
  const auto end = s.fault_start + s.o.faults;
  auto next_kill = s.fault_start + interval();
  auto next_note = s.fault_start + 60s;
  while (Clock::now() < end) {
    const auto now = Clock::now();
    if (now >= next_kill) {
      std::vector<std::pair<std::string, pid_t>> candidates;
      for (const auto& p : children_of(s.t.supervisor)) {
        const std::string kind = base_name(p.exe);
        if (p.state != 'Z' && s.base_procs.count(kind)) candidates.emplace_back(kind, p.pid);
      }
      if (!candidates.empty()) {
        const auto& [kind, pid] = candidates[s.rng() % candidates.size()];
        ::kill(pid, SIGKILL);
        std::lock_guard<std::mutex> l(s.kills_mu);
        s.kills.push_back(Kill{kind, pid, std::chrono::duration<double>(now - s.fault_start).count(), std::nullopt});
        s.pending.push_back(Pending{s.kills.size() - 1, now});
        ++s.r.kills_by_kind[kind];
      }
      next_kill = now + interval();
    }
    if (now >= next_note) {
      next_note += 60s;
      std::lock_guard<std::mutex> l(s.kills_mu);
      s.say(std::to_string(static_cast<int64_t>(ms_between(s.fault_start, now) / 1000)) + " s: " +
            std::to_string(s.kills.size()) + " kills; failed so far: reserve " + std::to_string(s.reserves.failed) +
            ", heartbeat " + std::to_string(s.heartbeats.failed) + ", status " + std::to_string(s.statuses.failed) +
            ", download " + std::to_string(s.downloads.failed));
    }
    std::this_thread::sleep_for(50ms);
  }
  s.r.fault_seconds = std::chrono::duration<double>(Clock::now() - s.fault_start).count();
}

void Run::settle() {
  State& s = *s_;
  eventually([&] {
    std::lock_guard<std::mutex> l(s.kills_mu);
    return s.pending.empty();
  }, s.o.recovery_limit + 5s, 50ms);
  auto c = connect(s.ctx, s.t.front, 1000);
  s.r.restored = eventually([&] { return s.all_serving(*c); }, 15s, 100ms);
  s.settled = Clock::now();
  std::lock_guard<std::mutex> l(s.kills_mu);
  s.r.kills = s.kills;
}

void Run::verify() {
  State& s = *s_;
  Report& r = s.r;
  s.stop_load = true;
  for (auto& th : s.load) th.join();
  s.load.clear();
  r.requests = {{"reserve", s.reserves.counts()}, {"heartbeat", s.heartbeats.counts()}, {"status", s.statuses.counts()}};
  if (s.release) r.requests["download"] = s.downloads.counts();
  r.downloads_completed = s.completed.load();
  r.bad_hash = s.bad_hash.load();
  // After the faults a download goes through.
  if (s.release) {
    client::UpdateOptions settled_options = s.uo;
    settled_options.attempts = 20;
    const std::string out = s.t.scratch_dir + "/chaos-final.bin";
    auto got = client::UpdateAgent(settled_options).download(*s.release, out);
    r.final_download = got && sha256_file_hex(out).value_or("") == s.t.sha256;
    if (!got) r.final_download_error = got.error();
    else if (!r.final_download) r.final_download_error = "wrong hash";
    ::unlink(out.c_str());
  } else {
    r.final_download = true;
  }

  // Every Client is licensed again within its (shrunk) retry interval: a
  // contact in flight may first have to time out on every attempt.
  const auto bound = std::chrono::duration_cast<Ms>(s.o.lost_interval * 11 / 10 + s.o.contact_timeout * s.o.contact_attempts + 1s);
  r.retry_bound_ms = bound.count();
  r.relicensed = eventually([&] { return s.all_licensed(); }, bound, 20ms);
  r.relicensed_ms = std::chrono::duration_cast<Ms>(Clock::now() - s.settled).count();
  for (auto& a : s.agents)
    if (a->state() != LicenseState::licensed)
      r.not_licensed += a->computer() + " " + std::string(client::to_string(a->state())) + " (" + a->reason() + ") ";
  s.stop_agents = true;
  for (auto& th : s.agent_threads) th.join();
  s.agent_threads.clear();
  r.withdrawn = s.withdrawn.load();
  r.client_lost = s.went_lost.load();
  {
    std::lock_guard<std::mutex> l(s.agents_mu);
    r.first_withdrawn = s.first_withdrawn;
  }

  // Every acknowledged reservation is there, with the same license.
  auto admin = connect(s.ctx, s.t.front, 2000);
  std::map<std::string, std::string> acked;
  {
    std::lock_guard<std::mutex> l(s.mu);
    acked = s.acked;
  }
  r.acked = acked.size();
  for (const auto& [name, license] : acked) {
    std::optional<Value> got;
    eventually([&] {
      auto reply = admin->call("license.control", "reserve", {{"computer", Value(name)}});
      if (reply && reply->find("created")) got = *reply;
      return got.has_value();
    }, 5s, 50ms);
    if (!got) {
      if (r.first_wrong.empty()) r.first_wrong = name + " (no answer)";
      continue;
    }
    s.saw_reserved(*got);
    r.final_reserved = reply_int(*got, "reserved");
    const Value* created = got->find("created");
    if (reply_str(*got, "license") == license && created->is_bool() && !created->as_bool()) ++r.present;
    else if (r.first_wrong.empty()) r.first_wrong = name;
  }
  r.mismatches = s.mismatches.load();
  r.over_cap = s.over_cap.load();
  r.max_reserved = s.max_reserved.load();
  if (auto status = admin->call("admin", "status"); status && reply_ok(*status)) {
    r.status_reserved = reply_int(*status, "reserved");
    r.status_purchased = reply_int(*status, "purchased");
  }
}

void Run::orphans(std::chrono::milliseconds wait) {
  State& s = *s_;
  s.stop_monitor = true;
  if (s.monitor.joinable()) s.monitor.join();
  std::set<pid_t> seen;
  {
    std::lock_guard<std::mutex> l(s.seen_mu);
    seen = s.seen;
  }
  s.r.processes_seen = seen.size();
  eventually([&] {
    s.r.orphans.clear();
    for (pid_t p : seen)
      if (!process_gone(p)) s.r.orphans.push_back(p);
    return s.r.orphans.empty();
  }, wait, 50ms);
}

}  // namespace primary::chaos
