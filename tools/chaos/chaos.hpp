// Fault injection against the whole product as primary-server runs it; the
// harness behind tests/fault_test and `primary-bench chaos`.
//
// While threads reserve (new and repeated names), simulated Clients
// (LicenseAgents with shrunk retry intervals) and a plain heartbeat loop
// heartbeat, an admin polls status and a Client downloads an update over and
// over, a random child of the supervisor (the broker, a licensing worker, the
// updater, the admin worker or the private Redis) is SIGKILLed every
// kill_min..kill_max (seeded) and restarted by the supervisor.
//
// What is checked afterwards: every reservation ever acknowledged is still
// there with the same license and is not created again; no reply ever showed
// more reserved than purchased; every Client is licensed again within its
// retry interval and none was ever told it is unlicensed; every completed
// download had the right hash; and, once the caller has stopped the
// supervisor, no process ever seen in its tree is left. Requests may fail
// while a process is down; they are counted per kind, never hidden.
//
// Recovery: after each kill a monitor thread measures how long until the
// killed kind serves again: the supervisor runs as many processes of the
// kind as before the faults (none of them the killed one), the broker counts
// as many worker connections for the kind's services as before (after having
// seen the count change, or after the broker must have expired the dead
// worker's connections, so stale ones do not count), and a request of the
// kind's own service succeeds (a heartbeat for the broker, heartbeat and
// reserve for licensing and Redis, status for admin, update check for the
// updater).
//
// A run goes through its phases in order; the caller may look at the system
// in between (the bench samples RSS there):
//   start()    reserve the fleet, license its Clients, start the load
//   faults()   the kills
//   settle()   wait until every kill has recovered (the load goes on)
//   verify()   stop the load; final download, relicensing, every
//              acknowledged reservation
//   orphans()  after the caller has SIGTERMed the supervisor
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace primary::chaos {

// The process kinds a run kills, by executable name.
const std::vector<std::string>& victim_kinds();

// A TCP port on 127.0.0.1 that was free a moment ago. The front door needs a
// fixed port: a broker restarted on "*" would listen somewhere else, and
// Clients only know the endpoint they were given.
int free_port();

// The system under test, already registered and unlocked.
struct Target {
  pid_t supervisor = 0;
  std::string front;       // fixed port (see free_port)
  int64_t purchased = 0;   // licenses the unlock gave
  // A release approved for Clients, downloaded under faults; empty
  // component: no downloads and no updater probe.
  std::string component, sha256;
  std::string vendor_key;  // the vendor's public key (base64url or raw), to check the offer
  std::string scratch_dir; // where downloads are written
};

struct Options {
  std::chrono::milliseconds warmup{0};    // load before the first kill
  std::chrono::milliseconds faults{20000};
  std::chrono::milliseconds kill_min{1000}, kill_max{2000};
  uint64_t seed = 42;
  int clients = 50;          // simulated Clients (LicenseAgents)
  int reserve_threads = 3;
  // The product's 60 s / 1 h Client retries, shrunk; licensed Clients use
  // the server's --check-interval-s.
  std::chrono::seconds unlicensed_interval{1}, lost_interval{2};
  std::chrono::milliseconds contact_timeout{1000};
  int contact_attempts = 2;
  // How long the broker may keep a dead worker's connections: its heartbeat
  // interval times (liveness + 1).
  std::chrono::milliseconds worker_expiry{800};
  // A kill not recovered within this long counts as unrecovered.
  std::chrono::milliseconds recovery_limit{60000};
  std::function<void(const std::string&)> progress;  // a line now and then; may be empty
};

// Requests of one kind.
struct Counts {
  int64_t made = 0, failed = 0;
  int64_t refused = 0;                  // NO_LICENSES_LEFT: the cap working, not a failure
  std::map<std::string, int64_t> codes; // failure code -> count
  std::string text() const;
};

struct Kill {
  std::string kind;
  pid_t pid = 0;
  double at_s = 0;                         // since the faults began
  std::optional<double> recovery_ms;       // nullopt: not recovered within the limit
};

struct Report {
  // start()
  bool licensed_first = false;  // every Client licensed before the faults
  std::string start_error;      // why start() failed; empty when it did not
  // faults() and settle()
  std::vector<Kill> kills;
  std::map<std::string, int> kills_by_kind;
  double fault_seconds = 0;
  bool restored = false;  // every kind back at full strength and serving after the faults
  // verify()
  std::map<std::string, Counts> requests;  // reserve, heartbeat, status, download
  int64_t client_lost = 0;  // simulated Clients' transitions to lost (no answer)
  int downloads_completed = 0, bad_hash = 0;
  bool final_download = false;  // a download after the faults, right hash
  std::string final_download_error;
  bool relicensed = false;
  int64_t relicensed_ms = -1, retry_bound_ms = 0;
  std::string not_licensed;  // Clients not licensed at the bound
  int withdrawn = 0;         // licensed -> unlicensed: the server forgot a reservation
  std::string first_withdrawn;
  size_t acked = 0, present = 0;  // acknowledged reservations; of them still there, same license
  std::string first_wrong;
  int mismatches = 0;  // an acknowledged name answered with another license, or created again
  int over_cap = 0;    // replies with reserved > purchased
  int64_t max_reserved = 0, final_reserved = -1, purchased = 0, status_reserved = -1, status_purchased = -1;
  // orphans()
  size_t processes_seen = 0;
  std::vector<pid_t> orphans;

  // Recovery times of the recovered kills, optionally of one kind.
  std::vector<double> recovery_ms(const std::string& kind = "") const;
  int unrecovered() const;
  // The invariants: acknowledged reservations all present and unchanged,
  // the cap held, Clients relicensed and never withdrawn, downloads right,
  // every kill recovered, no orphans. Failed requests are not a failure.
  bool invariants_hold() const;
  // A human summary, a line per subject.
  std::vector<std::string> lines() const;
};

// Sorted-sample percentile (q in [0, 1]); 0 for an empty sample.
double percentile(std::vector<double> sample, double q);

class Run {
 public:
  Run(zmq::context_t& ctx, Target target, Options options);
  ~Run();  // stops every thread it started
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  // Reserves the Clients' computers, starts them and waits until all are
  // licensed (Report::licensed_first), then starts the load and waits out
  // the warm-up. False when the fleet could not be reserved.
  bool start();
  // SIGKILLs a random victim every kill_min..kill_max for Options::faults.
  void faults();
  // Waits until every kill has recovered (or its limit passed) and every
  // kind serves (Report::restored); the load goes on.
  void settle();
  // Stops the load, then the checks after the faults (see the file comment).
  void verify();
  // Call after SIGTERM to the supervisor: waits up to `wait` for every
  // process ever seen in its tree to be gone; the rest are orphans.
  void orphans(std::chrono::milliseconds wait);

  const Report& report() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace primary::chaos
