// primary-echo-worker: serves the diagnostic `echo` service, for tests and
// benchmarks of the broker and the worker runtime.
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/config.hpp"
#include "common/process.hpp"
#include "common/worker.hpp"

int main(int argc, char** argv) {
  using namespace primary;
  Config cfg("primary-echo-worker", "Diagnostic echo worker");
  add_worker_settings(cfg);
  cfg.add_int("slots", 1, 1, 1024, "Concurrent requests per broker");
  cfg.parse(argc, argv);
  install_stop_signals();
  WorkerOptions opt = worker_options(cfg, "echo");
  zmq::context_t ctx(1);
  WorkerRuntime rt(ctx, opt);
  rt.serve(
      "echo",
      [](const Request& req) {
        if (req.op() == "sleep") {
          std::this_thread::sleep_for(std::chrono::milliseconds(req.integer("ms")));
          return Reply::success({{"slept_ms", Value(req.integer("ms"))}, {"pid", Value(int64_t{::getpid()})}});
        }
        const Value* payload = req.get("payload");
        return Reply::success({{"payload", payload ? *payload : Value()}});
      },
      static_cast<int>(cfg.integer("slots")));
  unblock_stop_signals();
  rt.run(stop_requested());
  return 0;
}
