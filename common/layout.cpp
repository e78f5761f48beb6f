#include "common/layout.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "common/crypto.hpp"
#include "common/events.hpp"
#include "common/keys.hpp"
#include "common/lua_scripts.hpp"
#include "common/names.hpp"
#include "common/process.hpp"
#include "common/redis_failure.hpp"
#include "common/redis_lock.hpp"

namespace primary::layout {
namespace {

constexpr const char* kPattern = "ps:*";
constexpr int64_t kLockTtlMs = 60000;

const Script& init_script() { return embedded_script<lua::kLayoutInit>(); }

// The script moving data from layout `from` to from + 1 (nullptr: none).
const Script* step_script(int64_t from) {
  if (from == 0) return &embedded_script<lua::kLayoutStep1>();
  return nullptr;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string holder_token() {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + random_token(6);
}

// Runs the steps from `from` to kCurrent while holding `lock`.
Status migrate(Redis& redis, ExpiringLock& lock, int64_t from, int64_t event_cap) {
  for (int64_t v = from; v < kCurrent; ++v) {
    const Script* step = step_script(v);
    if (!step) return Error{Code::Internal, "no migration from data layout " + std::to_string(v)};
    auto r = redis.eval(*step, {keys::kLayout, keys::kLayoutLock, kEventStream},
                        {lock.token(), event::kDataMigrated, std::to_string(event_cap), std::to_string(now_ms())});
    if (!r) return r.error();
    if (!r->is_array() || r->elements.empty() || !r->elements[0].is_int()) return reply_error(*r);
    const int64_t done = r->elements[0].integer;
    if (done < 0) return Error{Code::Busy, "lost the data layout lock while migrating"};
    if (done == 1) spdlog::info("migrated the data from layout {} to {}", v, v + 1);
    if (auto renewed = lock.renew(); !renewed || !*renewed)
      return Error{Code::Busy, "lost the data layout lock while migrating"};
  }
  return {};
}

}  // namespace

Result<Found> read(Redis& redis) {
  auto v = redis.command({"GET", keys::kLayout});
  if (!v) return v.error();
  if (v->is_str()) return Found{std::atoll(v->str.c_str()), false};
  if (!v->is_nil()) return reply_error(*v);
  std::string cursor = "0";
  do {
    auto r = redis.command({"SCAN", cursor, "MATCH", kPattern, "COUNT", "1000"});
    if (!r) return r.error();
    if (!r->is_array() || r->elements.size() != 2 || !r->elements[1].is_array()) return reply_error(*r);
    for (const auto& k : r->elements[1].elements)
      if (k.str != keys::kLayoutLock) return Found{0, false};
    cursor = r->elements[0].str;
  } while (cursor != "0");
  return Found{0, true};
}

std::string newer_message(int64_t version) {
  return "the data is in layout " + std::to_string(version) + ", newer than this release's " +
         std::to_string(kCurrent) + " (primary " + PRIMARY_VERSION +
         "): upgrade this program to the release that wrote it; nothing was changed";
}

Result<Outcome> ensure(Redis& redis, int64_t event_cap, int64_t wait_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  ExpiringLock lock(redis, keys::kLayoutLock, holder_token(), kLockTtlMs);
  for (;;) {
    auto found = redis.eval(init_script(), {keys::kLayout, keys::kLayoutLock},
                            {kPattern, std::to_string(kCurrent)});
    if (!found) return found.error();
    if (!found->is_int()) return reply_error(*found);
    const int64_t v = found->integer;
    if (v < 0) return Outcome{Outcome::Kind::Fresh, kCurrent};
    if (v == kCurrent) return Outcome{Outcome::Kind::Current, v};
    if (v > kCurrent) return Outcome{Outcome::Kind::Newer, v};
    auto took = lock.take();
    if (!took) return took.error();
    if (*took) {
      spdlog::info("the data is in layout {}: migrating it to {}", v, kCurrent);
      auto done = migrate(redis, lock, v, event_cap);
      (void)lock.release();
      if (!done) return done.error();
      return Outcome{Outcome::Kind::Migrated, v};
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return Error{Code::Busy, "another program has been migrating the data layout for too long (lock " +
                                   std::string(keys::kLayoutLock) + ")"};
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void ensure_or_exit(Config& cfg, const RedisUrl& url, int64_t event_cap) {
  // install_stop_signals() blocked SIGTERM and SIGINT for threads to come;
  // none runs yet, so let them set the stop flag while this waits.
  sigset_t stops, old;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  ::pthread_sigmask(SIG_UNBLOCK, &stops, &old);
  Redis redis(url);
  bool told = false;
  for (;;) {
    auto out = ensure(redis, event_cap);
    if (out) {
      if (out->kind == Outcome::Kind::Newer) cfg.fail(newer_message(out->found));
      if (out->kind == Outcome::Kind::Fresh) spdlog::info("new database: data layout {} recorded", kCurrent);
      ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
      return;
    }
    if (out.error().code != Code::Unavailable) cfg.fail("data layout: " + out.error().message);
    if (!told) spdlog::warn("cannot check the data layout yet ({}); retrying", out.error().message);
    told = true;
    for (int i = 0; i < 10 && !stop_requested(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (stop_requested()) std::exit(0);
  }
}

}  // namespace primary::layout
