// primaryctl as an admin runs it: the real executable against a real broker
// and echo worker, a whole stack (licensing and admin workers, Redis) and a
// secure primary-server; what it prints, what it writes and its exit codes
// (0 ok, 1 error reply, 2 usage, 3 unreachable).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/curve.hpp"
#include "common/value.hpp"
#include "tests/support/process.hpp"
#include "tests/support/stack.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/util.hpp"

namespace primary {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct CtlRun {
  int code = -1;
  std::string out, err;
  long long ms = 0;
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A TCP port on 127.0.0.1 that nothing listens on (bound, then closed).
int unused_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot find a free port";
    if (fd >= 0) close(fd);
    return 1;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// The `services` table: name -> (state, workers).
std::map<std::string, std::pair<std::string, std::string>> service_rows(const std::string& out) {
  std::map<std::string, std::pair<std::string, std::string>> rows;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream cols(line);
    std::string name, state, workers;
    cols >> name >> state >> workers;
    rows[name] = {state, workers};
  }
  return rows;
}

// Runs primaryctl with `args` (stdin from `input` when given), stdout and
// stderr captured separately in files of `dir`.
CtlRun run_ctl(const test::TempDir& dir, const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env = {}, const std::string& input = "") {
  static std::atomic<int> serial{0};
  const std::string n = std::to_string(serial++);
  const std::string out = dir.file("ctl-" + n + ".out"), err = dir.file("ctl-" + n + ".err");
  std::string cmd = "exec " + shell_quote(test::bin("primaryctl"));
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " <" + shell_quote(input.empty() ? "/dev/null" : input);
  cmd += " >" + shell_quote(out) + " 2>" + shell_quote(err);
  CtlRun r;
  const auto start = Clock::now();
  auto p = test::Process::start({"/bin/sh", "-c", cmd}, env);
  r.code = p.wait_exit(60s).value_or(-1);
  r.ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  r.out = test::read_file(out);
  r.err = test::read_file(err);
  return r;
}

// The same in the background, output to `out`.
test::Process start_ctl(const std::vector<std::string>& args, const std::string& out) {
  std::string cmd = "exec " + shell_quote(test::bin("primaryctl"));
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " </dev/null >" + shell_quote(out) + " 2>" + shell_quote(out + ".err");
  return test::Process::start({"/bin/sh", "-c", cmd});
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// "key    value" lines (status, registration, unlock): key -> value.
std::map<std::string, std::string> key_values(const std::string& text) {
  std::map<std::string, std::string> out;
  for (const auto& line : lines_of(text)) {
    const auto gap = line.find("  ");
    if (gap == std::string::npos) continue;
    const auto value = line.find_first_not_of(' ', gap);
    out[line.substr(0, gap)] = value == std::string::npos ? "" : line.substr(value);
  }
  return out;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

void write_text(const std::string& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// A strict JSON reader (RFC 8259) into a Value, for --json output: integers
// become ints, other numbers doubles; trailing text is an error.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : s_(text) {}
  std::optional<Value> document() {
    auto v = value();
    blanks();
    if (!v || i_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void blanks() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  bool eat(char c) {
    blanks();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  bool word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  std::optional<std::string> string() {
    if (!eat('"')) return std::nullopt;
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c < 0x20) return std::nullopt;
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (i_ >= s_.size()) return std::nullopt;
      const char e = s_[i_++];
      const std::string_view simple = "\"\\/bfnrt", meaning = "\"\\/\b\f\n\r\t";
      if (auto k = simple.find(e); k != std::string_view::npos) {
        out += meaning[k];
      } else if (e == 'u' && i_ + 4 <= s_.size()) {
        unsigned cp = 0;
        for (int k = 0; k < 4; ++k) {
          const char h = s_[i_++];
          if (!std::isxdigit(static_cast<unsigned char>(h))) return std::nullopt;
          cp = cp * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        if (cp < 0x80) out += static_cast<char>(cp);
        else if (cp < 0x800) out += {static_cast<char>(0xC0 | cp >> 6), static_cast<char>(0x80 | (cp & 0x3F))};
        else out += {static_cast<char>(0xE0 | cp >> 12), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
      } else {
        return std::nullopt;
      }
    }
    if (i_ >= s_.size()) return std::nullopt;
    ++i_;
    return out;
  }
  std::optional<Value> number() {
    const size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    auto digits = [&] {
      const size_t from = i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      return i_ > from;
    };
    if (i_ < s_.size() && s_[i_] == '0') ++i_;
    else if (!digits()) return std::nullopt;
    bool integral = true;
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      integral = false;
      if (!digits()) return std::nullopt;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      integral = false;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!digits()) return std::nullopt;
    }
    const std::string text(s_.substr(start, i_ - start));
    if (integral) return Value(static_cast<long long>(std::stoll(text)));
    return Value(std::stod(text));
  }
  std::optional<Value> value() {
    if (++depth_ > 64) return std::nullopt;
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{depth_};
    blanks();
    if (i_ >= s_.size()) return std::nullopt;
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      Value::Map map;
      if (eat('}')) return Value(std::move(map));
      do {
        auto key = string();
        if (!key || !eat(':')) return std::nullopt;
        auto v = value();
        if (!v) return std::nullopt;
        for (const auto& kv : map)
          if (kv.first == *key) return std::nullopt;  // duplicate key
        map.emplace_back(std::move(*key), std::move(*v));
      } while (eat(','));
      if (!eat('}')) return std::nullopt;
      return Value(std::move(map));
    }
    if (c == '[') {
      ++i_;
      Value::Array array;
      if (eat(']')) return Value(std::move(array));
      do {
        auto v = value();
        if (!v) return std::nullopt;
        array.push_back(std::move(*v));
      } while (eat(','));
      if (!eat(']')) return std::nullopt;
      return Value(std::move(array));
    }
    if (c == '"') {
      auto text = string();
      if (!text) return std::nullopt;
      return Value(std::move(*text));
    }
    if (word("true")) return Value(true);
    if (word("false")) return Value(false);
    if (word("null")) return Value();
    return number();
  }

  std::string_view s_;
  size_t i_ = 0;
  int depth_ = 0;
};

// --json output as a Value; fails the test when it is not exactly one JSON
// document, by this reader and by Python's json module.
Value parse_json(const test::TempDir& dir, const std::string& text) {
  static std::atomic<int> serial{0};
  const std::string path = dir.file("json-" + std::to_string(serial++) + ".txt");
  write_text(path, text);
  int rc = -1;
  test::run_capture({"/usr/bin/python3", "-c", "import json,sys; json.load(open(sys.argv[1]))", path}, &rc);
  EXPECT_EQ(rc, 0) << "python3's json module refuses:\n" << text;
  auto v = JsonReader(text).document();
  EXPECT_TRUE(v.has_value()) << "not one JSON document:\n" << text;
  return v.value_or(Value());
}

// Reply accessors for parsed JSON.
std::string jstr(const Value& v, std::string_view key) {
  const Value* f = v.find(key);
  return f && f->is_str() ? f->as_str() : std::string("<missing " + std::string(key) + ">");
}
int64_t jint(const Value& v, std::string_view key) {
  const Value* f = v.find(key);
  return f && f->is_int() ? f->as_int() : -1;
}
bool jbool(const Value& v, std::string_view key) {
  const Value* f = v.find(key);
  return f && f->is_bool() && f->as_bool();
}
const Value::Array& jarray(const Value& v, std::string_view key = {}) {
  static const Value::Array none;
  const Value* f = key.empty() ? &v : v.find(key);
  return f && f->is_array() ? f->as_array() : none;
}

// The port of "tcp://host:port".
std::string port_of(const std::string& endpoint) { return endpoint.substr(endpoint.rfind(':') + 1); }

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = test::Process::start(
        {test::bin("primary-broker"), "--insecure", "--front", "tcp://127.0.0.1:*", "--events",
         "tcp://127.0.0.1:*", "--workers-endpoint", "tcp://127.0.0.1:*", "--event-sink",
         "tcp://127.0.0.1:*", "--endpoints-file", dir_.file("ep"), "--heartbeat-ms", "100",
         "--request-timeout-ms", "1000"},
        {}, dir_.file("broker.log"));
    std::string workers;
    ASSERT_TRUE(test::wait_until(
        [&] {
          std::istringstream in(test::read_file(dir_.file("ep")));
          for (std::string line; std::getline(in, line);) {
            if (line.starts_with("front=")) front_ = line.substr(6);
            if (line.starts_with("workers=")) workers = line.substr(8);
          }
          return !front_.empty() && !workers.empty();
        },
        10s))
        << "the broker wrote no endpoints file";
    worker_ = test::Process::start(
        {test::bin("primary-echo-worker"), "--broker", workers, "--heartbeat-ms", "100"}, {},
        dir_.file("worker.log"));
    ASSERT_TRUE(test::wait_until(
        [&] { return ctl({"--server", front_, "call", "mmi.service", "echo"}).code == 0; }, 10s,
        50ms))
        << "the echo worker never registered";
  }

  void TearDown() override {
    worker_.kill();
    broker_.kill();
    if (HasFailure())
      std::cerr << "---- broker log ----\n" << test::read_file(dir_.file("broker.log"));
  }

  CtlRun ctl(const std::vector<std::string>& args,
             const std::map<std::string, std::string>& env = {}) {
    return run_ctl(dir_, args, env);
  }

  test::TempDir dir_{"pct"};
  test::Process broker_, worker_;
  std::string front_;
};

TEST_F(CtlTest, CallPrintsTheReplyAsJson) {
  CtlRun r = ctl({"--server", front_, "call", "echo", "echo", "payload=hi"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("ok":true)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("payload":"hi")"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");

  // Typed values; global flags may also follow the subcommand.
  r = ctl({"call", "echo", "echo", "payload=-42", "rid=true", "--server", front_});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("payload":-42)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("rid":true)"), std::string::npos) << r.out;
  r = ctl({"--server", front_, "call", "echo", "echo", "payload=null", "rid=a=b"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("payload":null)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("rid":"a=b")"), std::string::npos) << r.out;
  r = ctl({"--server", front_, "call", "echo", "sleep", "ms=5"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("slept_ms":5)"), std::string::npos) << r.out;
}

TEST_F(CtlTest, ServerFromEnvironment) {
  CtlRun r = ctl({"call", "echo", "echo", "payload=env"}, {{"PRIMARY_SERVER", front_}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("payload":"env")"), std::string::npos) << r.out;
}

TEST_F(CtlTest, ErrorReplyExitsOne) {
  CtlRun r = ctl({"--server", front_, "call", "echo", "nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("UNKNOWN_OP: "), std::string::npos) << r.err;
  EXPECT_NE(r.out.find(R"("ok":false)"), std::string::npos) << r.out;

  r = ctl({"--server", front_, "call", "echo", "sleep", "ms=fast"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("BAD_REQUEST: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ms"), std::string::npos) << r.err;

  r = ctl({"--server", front_, "call", "mmi.service", "nosuch"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("404"), std::string::npos) << r.out;
}

TEST_F(CtlTest, UnreachableServerExitsThreeWithinTheTimeout) {
  const std::string dead = "tcp://127.0.0.1:" + std::to_string(unused_port());
  CtlRun r = ctl({"--server", dead, "--timeout-ms", "500", "call", "echo", "echo"});
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("500 ms"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_GE(r.ms, 450);
  EXPECT_LT(r.ms, 2500) << "primaryctl did not give up at its timeout";

  r = ctl({"--server", dead, "--timeout-ms", "300", "services"});
  EXPECT_EQ(r.code, 3) << r.out << r.err;

  // With a list, the next server answers.
  r = ctl({"--server", dead + "," + front_, "--timeout-ms", "300", "call", "echo", "echo",
           "payload=second"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("payload":"second")"), std::string::npos) << r.out;
}

TEST_F(CtlTest, BadUsageExitsTwo) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {},
           {"nosuch-command"},
           {"--server", front_, "call"},
           {"--server", front_, "call", "echo"},
           {"--server", front_, "call", "echo", "echo", "no-equals-sign"},
           {"--server", front_, "call", "echo", "echo", "=value"},
           {"--server", front_, "call", "echo", "echo", "op=echo"},
           {"--server", front_, "call", "echo", "echo", "a=1", "a=2"},
           {"--server", front_, "--timeout-ms", "soon", "call", "echo", "echo"},
           {"--server", front_, "--bogus", "services"},
           {"--server", ",", "services"},
       }) {
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    CtlRun r = ctl(args);
    EXPECT_EQ(r.code, 2) << "primaryctl " << shown << "\n" << r.out << r.err;
    EXPECT_FALSE(r.err.empty()) << "primaryctl " << shown << ": no message";
  }
  CtlRun help = ctl({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("call"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("services"), std::string::npos) << help.out;
}

TEST_F(CtlTest, ServicesListsStateAndWorkers) {
  CtlRun r = ctl({"--server", front_, "services"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto rows = service_rows(r.out);
  EXPECT_EQ(rows["echo"], std::make_pair(std::string("up"), std::string("1"))) << r.out;
  EXPECT_EQ(rows["license"].first, "down") << r.out;
  EXPECT_EQ(rows["broker.control"].first, "up") << r.out;
  for (const char* name : {"license", "license.control", "update", "update.control", "admin"})
    EXPECT_TRUE(rows.count(name)) << name << " missing:\n" << r.out;

  worker_.kill();
  std::string last;
  EXPECT_TRUE(test::wait_until(
      [&] {
        last = ctl({"--server", front_, "services"}).out;
        return service_rows(last)["echo"].first == "down";
      },
      5s, 50ms))
      << last;
}

TEST_F(CtlTest, KeysCreateWritesAPrivateKeyOnce) {
  const std::string keys = dir_.file("keys");
  CtlRun r = ctl({"keys", "create", "--out", keys});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(mode_of(keys + "/admin.key"), 0600u);
  auto pub = read_curve_public(keys + "/admin.pub");
  auto secret = read_curve_secret(keys + "/admin.key");
  ASSERT_TRUE(pub.ok() && secret.ok());
  EXPECT_EQ(curve_public_of(*secret), *pub);
  // The allow-list line and how to reload.
  EXPECT_NE(r.out.find(*pub + "  # admin"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DATA/keys/admins"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kill -HUP"), std::string::npos) << r.out;

  const std::string before = test::read_file(keys + "/admin.key");
  r = ctl({"keys", "create", "--out", keys});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_file(keys + "/admin.key"), before);

  r = ctl({"keys", "create", "--out", keys, "--name", "ops"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(mode_of(keys + "/ops.key"), 0600u);
  EXPECT_EQ(ctl({"keys", "create", "--out", keys, "--name", "../x"}).code, 2);
  EXPECT_EQ(ctl({"keys", "create"}).code, 2);
  EXPECT_EQ(ctl({"keys"}).code, 2);
}

TEST_F(CtlTest, BadKeysAreUsageErrors) {
  const std::string keys = dir_.file("k");
  ASSERT_EQ(ctl({"keys", "create", "--out", keys}).code, 0);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--server-key", "not-a-key", "services"},
           {"--server-key", keys + "/admin.pub", "--client-key", dir_.file("nosuch.key"), "services"},
           {"--client-key", keys + "/admin.key", "services"},  // no server key
           {"--server-key", keys + "/admin.key", "services"},  // a secret key file
           {"--server-key", keys + "/admin.pub", "--client-key", keys + "/admin.pub", "services"},
       }) {
    CtlRun r = ctl(args);
    EXPECT_EQ(r.code, 2) << args[1] << "\n" << r.out << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  ::chmod((keys + "/admin.key").c_str(), 0644);
  CtlRun r = ctl({"--server-key", keys + "/admin.pub", "--client-key", keys + "/admin.key", "services"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("readable by group or others"), std::string::npos) << r.err;
  r = ctl({"--server", "ipc:///tmp/nowhere", "events", "--count", "1"});  // no port to derive from
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--events"), std::string::npos) << r.err;
}

// The subcommand names `primaryctl --help` lists.
std::vector<std::string> listed_commands(const std::string& help) {
  std::vector<std::string> names;
  bool in_list = false;
  for (const auto& line : lines_of(help)) {
    if (line == "Subcommands:" || line == "SUBCOMMANDS:") {
      in_list = true;
      continue;
    }
    if (!in_list) continue;
    if (!line.starts_with("  ") || line.size() < 3 || line[2] == ' ') break;
    names.push_back(words(line).at(0));
  }
  return names;
}

// Every command, including ones added after this test was written: --json
// and an example in its --help.
TEST(CtlHelp, EveryCommandHasJsonAndAnExample) {
  test::TempDir dir("pch");
  CtlRun top = run_ctl(dir, {"--help"});
  ASSERT_EQ(top.code, 0) << top.err;
  const auto names = listed_commands(top.out);
  ASSERT_GE(names.size(), 15u) << "no command list in:\n" << top.out;
  for (const auto& name : names) {
    CtlRun r = run_ctl(dir, {name, "--help"});
    EXPECT_EQ(r.code, 0) << name << "\n" << r.err;
    EXPECT_NE(r.out.find("--json"), std::string::npos) << name << " has no --json:\n" << r.out;
    const auto example = r.out.find("\nExample");
    ASSERT_NE(example, std::string::npos) << name << " has no example:\n" << r.out;
    bool uses_it = false;  // an example line "  primaryctl ... NAME ..."
    for (const auto& line : lines_of(r.out.substr(example)))
      if (line.starts_with("  primaryctl ")) {
        const auto w = words(line);
        uses_it = uses_it || std::find(w.begin(), w.end(), name) != w.end();
      }
    EXPECT_TRUE(uses_it) << name << ": no example command line uses it:\n" << r.out;
  }
  // Nested subcommands carry it too.
  CtlRun create = run_ctl(dir, {"keys", "create", "--help"});
  EXPECT_NE(create.out.find("primaryctl keys create --out"), std::string::npos) << create.out;
}

// A stack with licensing and admin workers; primaryctl pointed at it.
class CtlStackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::StackOptions o;
    o.admin_workers = 1;
    stack_ = std::make_unique<test::Stack>(o);
    ASSERT_TRUE(stack_->ok());
  }

  CtlRun ctl(const std::vector<std::string>& args,
             const std::map<std::string, std::string>& env = {}, const std::string& input = "") {
    std::vector<std::string> all = {"--server", stack_->front(), "--events", stack_->events()};
    all.insert(all.end(), args.begin(), args.end());
    return run_ctl(dir_, all, env, input);
  }

  // Registers and unlocks `serial` for `licenses` through primaryctl.
  void unlock(const std::string& serial, int64_t licenses) {
    CtlRun r = ctl({"register", serial});
    ASSERT_EQ(r.code, 0) << r.err;
    ASSERT_EQ(lines_of(r.out).size(), 1u) << r.out;
    const std::string code = stack_->vendor_code(lines_of(r.out)[0], licenses);
    r = ctl({"unlock", code});
    ASSERT_EQ(r.code, 0) << r.err;
  }

  std::string file(const std::string& name, const std::string& text) {
    write_text(dir_.file(name), text);
    return dir_.file(name);
  }

  test::TempDir dir_{"pcs"};
  std::unique_ptr<test::Stack> stack_;
};

TEST_F(CtlStackTest, RegisterUnlockAndReserveFromAFile) {
  CtlRun r = ctl({"reserve", "early"});
  EXPECT_EQ(r.code, 1);
  ASSERT_GE(lines_of(r.out).size(), 2u) << r.out;
  EXPECT_EQ(words(lines_of(r.out)[1]).at(0), "early") << r.out;
  EXPECT_EQ(words(lines_of(r.out)[1]).at(1), "-") << r.out;
  EXPECT_EQ(words(lines_of(r.out)[1]).at(2), "NOT_UNLOCKED:") << r.out;
  EXPECT_NE(r.out.find("reserved 0 new, 0 existing, 1 refused\n"), std::string::npos) << r.out;

  r = ctl({"register", "SN-CTL"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string registration = lines_of(r.out).at(0);
  EXPECT_TRUE(registration.starts_with("PS1-SN-CTL-")) << r.out;
  r = ctl({"registration"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(key_values(r.out)["serial"], "SN-CTL") << r.out;
  EXPECT_EQ(key_values(r.out)["registration code"], registration) << r.out;

  r = ctl({"unlock", stack_->vendor_code(registration, 500)});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(key_values(r.out)["serial"], "SN-CTL") << r.out;
  EXPECT_EQ(key_values(r.out)["purchased"], "500") << r.out;
  r = ctl({"unlock", "garbage"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("INVALID_UNLOCK_CODE"), std::string::npos) << r.err;

  // 200 names: 180 distinct, 19 repeats (upper-case: names compare
  // case-insensitively), one invalid; comments and blank lines between.
  std::string text = "# computers of the second floor\n\n";
  for (int i = 0; i < 180; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "pc-%03d", i);
    text += std::string(name) + (i % 50 == 0 ? "   # by the window\n" : "\n");
    if (i % 60 == 0) text += "   \n# next row\n";
  }
  for (int i = 0; i < 19; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "PC-%03d", i * 9);
    text += std::string(name) + "\n";
  }
  text += "bad/name\n";
  r = ctl({"reserve", "--from", file("names.txt", text)});
  EXPECT_EQ(r.code, 1) << r.err;
  const auto out = lines_of(r.out);
  ASSERT_EQ(out.size(), 202u) << r.out;  // header, 200 names, summary
  EXPECT_EQ(words(out[0]), (std::vector<std::string>{"COMPUTER", "LICENSE", "RESULT"}));
  EXPECT_EQ(out[0].find("LICENSE"), out[1].find(words(out[1]).at(1))) << "not aligned:\n" << r.out;
  EXPECT_EQ(out[0].find("RESULT"), out[1].find("created")) << "not aligned:\n" << r.out;
  EXPECT_EQ(out.back(), "reserved 180 new, 19 existing, 1 refused; 180 of 500 licenses in use");
  EXPECT_EQ(words(out[200]).at(0), "bad/name") << out[200];
  EXPECT_NE(out[200].find(" -  "), std::string::npos) << out[200];
  EXPECT_NE(out[200].find("BAD_REQUEST: field 'computer'"), std::string::npos) << out[200];
  EXPECT_NE(r.err.find("1 of 200 names refused"), std::string::npos) << r.err;
  std::map<std::string, std::string> license_of;
  std::set<std::string> licenses;
  for (size_t i = 1; i < 200; ++i) {
    const auto w = words(out[i]);
    ASSERT_EQ(w.size(), 3u) << out[i];
    EXPECT_EQ(w[2], i <= 180 ? "created" : "existing") << out[i];
    std::string upper = w[0];
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (license_of.count(upper)) {
      EXPECT_EQ(license_of[upper], w[1]) << upper;
    }
    license_of[upper] = w[1];
    licenses.insert(w[1]);
  }
  EXPECT_EQ(licenses.size(), 180u);

  // Names on the command line and from stdin.
  r = ctl({"reserve", "pc-000", "-", "pc-new-1"}, {}, file("stdin.txt", "pc-new-2\n# x\npc-001\n"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("reserved 2 new, 2 existing, 0 refused; 182 of 500 licenses in use"),
            std::string::npos)
      << r.out;
  r = ctl({"reserve", "--from", "-"}, {}, file("stdin2.txt", "pc-new-3\n"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("reserved 1 new, 0 existing"), std::string::npos) << r.out;

  EXPECT_EQ(ctl({"reserve"}).code, 2);
  EXPECT_EQ(ctl({"reserve", "--from", dir_.file("nosuch")}).code, 2);

  // Pipelined requests fail over to the next server like single ones.
  const std::string dead = "tcp://127.0.0.1:" + std::to_string(unused_port());
  r = run_ctl(dir_, {"--server", dead + "," + stack_->front(), "--timeout-ms", "300", "reserve",
                     "--from", file("few.txt", "pc-000\nfo-1\nfo-2\n")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("reserved 2 new, 1 existing, 0 refused"), std::string::npos) << r.out;
  r = run_ctl(dir_, {"--server", dead, "--timeout-ms", "300", "reserve", "fo-3", "fo-4"});
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("UNAVAILABLE: no reply within 300 ms"), std::string::npos) << r.out;
  EXPECT_EQ(words(lines_of(r.out).at(1)).at(0), "fo-3") << r.out;
}

// Speed is the benchmarks' business (docs/benchmarks.md): this checks that a
// 10,000-name file goes through whole and reports the time it took.
TEST_F(CtlStackTest, ReservingTenThousandFromAFile) {
  ASSERT_NO_FATAL_FAILURE(unlock("SN-BIG", 10000));
  std::string text;
  for (int i = 0; i < 10000; ++i) text += "host-" + std::to_string(i) + "\n";
  CtlRun r = ctl({"reserve", "--from", file("big.txt", text)});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto out = lines_of(r.out);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), "reserved 10000 new, 0 existing, 0 refused; 10000 of 10000 licenses in use");
  std::cout << "10,000 reservations: " << r.ms << " ms\n";
  RecordProperty("reserve_10000_ms", static_cast<int>(r.ms));
  // --json over all ten pages of admin.computers: one array, each name once.
  r = ctl({"computers", "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  const Value all = parse_json(dir_, r.out);
  std::set<std::string> names;
  for (const Value& c : jarray(all)) names.insert(jstr(c, "computer"));
  EXPECT_EQ(jarray(all).size(), 10000u);
  EXPECT_EQ(names.size(), 10000u);
  EXPECT_TRUE(names.count("HOST-0") && names.count("HOST-9999"));
  // One more is refused: every license is taken.
  r = ctl({"reserve", "one-too-many"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(words(lines_of(r.out).at(1)).at(0), "one-too-many") << r.out;
  EXPECT_NE(r.out.find("NO_LICENSES_LEFT: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("10000 of 10000 licenses in use"), std::string::npos) << r.out;
}

TEST_F(CtlStackTest, SetupInfoWritesAPrivateJsonFile) {
  ASSERT_NO_FATAL_FAILURE(unlock("SN-SETUP", 10));
  CtlRun r = ctl({"reserve", "desk-7"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string license = words(lines_of(r.out).at(1)).at(1);

  const std::string path = dir_.file("desk-7.json");
  r = ctl({"setup-info", "desk-7", "--out", path});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(mode_of(path), 0600u);
  const std::string json = test::read_file(path);
  for (const std::string& part :
       {std::string(R"("computer":"DESK-7")"), R"("license":")" + license + "\"",
        std::string(R"("serial":"SN-SETUP")"), std::string(R"("endpoints":[)"),
        std::string(R"("lease_key":")")})
    EXPECT_NE(json.find(part), std::string::npos) << part << " in " << json;
  EXPECT_EQ(json.find(R"("ok")"), std::string::npos) << json;
  EXPECT_EQ(json.find("server_key"), std::string::npos) << json;  // insecure stack

  // Overwrites, still 0600; without --out the same JSON on stdout.
  ::chmod(path.c_str(), 0644);
  ASSERT_EQ(ctl({"setup-info", "desk-7", "--out", path}).code, 0);
  EXPECT_EQ(mode_of(path), 0600u);
  r = ctl({"setup-info", "DESK-7"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, json);

  r = ctl({"setup-info", "nobody", "--out", dir_.file("nobody.json")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("NOT_FOUND"), std::string::npos) << r.err;
  EXPECT_EQ(mode_of(dir_.file("nobody.json")), 0u) << "a file was written for a refusal";
}

TEST_F(CtlStackTest, StatusComputersLogAndCommands) {
  ASSERT_NO_FATAL_FAILURE(unlock("SN-ADM", 50));
  std::string names;
  for (int i = 0; i < 12; ++i) names += "ws-" + std::to_string(10 + i) + "\n";
  CtlRun r = ctl({"reserve", "--from", file("ws.txt", names)});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string license = words(lines_of(r.out).at(1)).at(1);  // WS-10
  Value hb = stack_->call("license", "heartbeat",
                          {{"computer", Value("ws-10")}, {"license", Value(license)},
                           {"version", Value("7.1")}, {"client_time", Value(int64_t{86400})}});  // a clock in 1970
  const Value* status = hb.find("status");
  ASSERT_TRUE(status && status->is_str() && status->as_str() == "licensed") << to_json(hb);

  r = ctl({"status"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto st = key_values(r.out);
  EXPECT_EQ(st["clock skewed"], "1") << r.out;
  EXPECT_EQ(st["serial"], "SN-ADM") << r.out;
  EXPECT_EQ(st["purchased"], "50") << r.out;
  EXPECT_EQ(st["reserved"], "12") << r.out;
  EXPECT_EQ(st["active"], "1") << r.out;
  EXPECT_EQ(st["lost"], "0") << r.out;
  EXPECT_EQ(st["never seen"], "11") << r.out;
  EXPECT_FALSE(st["version"].empty()) << r.out;
  EXPECT_NE(st["services"].find("admin "), std::string::npos) << r.out;
  EXPECT_NE(st["services"].find("license "), std::string::npos) << r.out;
  r = ctl({"status", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find(R"("reserved":12)"), std::string::npos) << r.out;

  r = ctl({"computers", "--state", "reserved", "--limit", "5"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto rows = lines_of(r.out);
  ASSERT_EQ(rows.size(), 6u) << r.out;
  EXPECT_EQ(words(rows[0]), (std::vector<std::string>{"COMPUTER", "STATE", "LAST-SEEN", "VERSION"}));
  EXPECT_EQ(rows[0].find("STATE"), rows[1].find("reserved")) << r.out;  // aligned
  for (size_t i = 1; i < rows.size(); ++i)
    EXPECT_EQ(words(rows[i]), (std::vector<std::string>{words(rows[i])[0], "reserved", "-", "-"}))
        << rows[i];
  r = ctl({"computers"});
  EXPECT_EQ(lines_of(r.out).size(), 13u) << r.out;
  r = ctl({"computers", "--state", "active"});
  rows = lines_of(r.out);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  const auto active = words(rows[1]);
  EXPECT_EQ(active.at(0), "WS-10");
  EXPECT_TRUE(std::regex_match(active.at(2), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << rows[1];
  EXPECT_EQ(active.at(3), "7.1");
  r = ctl({"computers", "--json", "--limit", "3", "--sort", "last-seen"});
  EXPECT_EQ(r.code, 0) << r.err;
  const Value listed = parse_json(dir_, r.out);
  ASSERT_EQ(jarray(listed).size(), 3u) << r.out;
  EXPECT_EQ(jstr(jarray(listed)[0], "computer"), "WS-10") << r.out;
  EXPECT_EQ(ctl({"computers", "--state", "gone"}).code, 2);

  r = ctl({"log", "--type", "license.reserved", "--limit", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  rows = lines_of(r.out);
  ASSERT_EQ(rows.size(), 3u) << r.out;
  const std::regex line(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z license\.reserved computer=WS-\d+ peer=127\.0\.0\.1 purchased=50 reserved=\d+ id=\d+-\d+ by local)");
  for (const auto& row : rows) EXPECT_TRUE(std::regex_match(row, line)) << row;
  r = ctl({"log", "--type", "license.reserved"});
  EXPECT_EQ(lines_of(r.out).size(), 12u) << r.out;
  std::string third;  // the third line's id
  for (const std::string& w : words(rows[2]))
    if (w.starts_with("id=")) third = w.substr(3);
  r = ctl({"log", "--type", "license.reserved,client.licensed", "--since", third});
  EXPECT_EQ(lines_of(r.out).size(), 10u) << r.out;  // 9 reservations and the heartbeat
  r = ctl({"log"});
  EXPECT_NE(r.out.find(" serial.unlocked "), std::string::npos) << r.out;

  r = ctl({"command", "ws-11", "reboot", "delay=5", "reason=patch day"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string id = lines_of(r.out).at(0);
  EXPECT_FALSE(id.empty());
  r = ctl({"log", "--type", "command.queued"});
  EXPECT_NE(r.out.find("command_id=" + id), std::string::npos) << r.out;
  r = ctl({"command", "nobody", "reboot"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("NOT_FOUND"), std::string::npos) << r.err;

  r = ctl({"computer", "ws-10"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto info = key_values(r.out);
  EXPECT_EQ(info["license"], license) << r.out;
  EXPECT_EQ(info["serial"], "SN-ADM") << r.out;
  EXPECT_EQ(info["clock skew"].rfind("-", 0), 0u) << r.out;  // far behind
  EXPECT_NE(r.out.find(" license.reserved computer=WS-10 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" client.licensed computer=WS-10 "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("computer=WS-11"), std::string::npos) << r.out;
}

// --json: one document on stdout, holding what the table shows; refusals
// and an unreachable server keep their exit codes with nothing on stdout.
TEST_F(CtlStackTest, JsonOutputOfEveryCommand) {
  auto json = [&](std::vector<std::string> args, int code = 0) {
    args.push_back("--json");
    CtlRun r = ctl(args);
    EXPECT_EQ(r.code, code) << args[0] << "\n" << r.out << r.err;
    return parse_json(dir_, r.out);
  };
  Value reg = json({"register", "SN-JSON"});
  EXPECT_EQ(jstr(reg, "serial"), "SN-JSON");
  const std::string registration = jstr(reg, "registration_code");
  EXPECT_TRUE(registration.starts_with("PS1-SN-JSON-")) << registration;
  EXPECT_EQ(jstr(json({"registration"}), "registration_code"), registration);
  EXPECT_EQ(jint(json({"unlock", stack_->vendor_code(registration, 1500)}), "purchased"), 1500);

  // reserve, several names: one object, an item per name in order.
  Value res = json({"reserve", "js-1", "js-2", "JS-1", "bad/name"}, 1);
  const auto& items = jarray(res, "items");
  ASSERT_EQ(items.size(), 4u) << to_json(res);
  EXPECT_EQ(jstr(items[0], "name"), "js-1");
  EXPECT_EQ(jstr(items[0], "computer"), "JS-1");
  // js-1 and JS-1 are in flight together: one of them creates the reservation.
  EXPECT_NE(jbool(items[0], "created"), jbool(items[2], "created")) << to_json(res);
  EXPECT_TRUE(jbool(items[1], "created")) << to_json(res);
  EXPECT_EQ(jstr(items[2], "license"), jstr(items[0], "license"));
  EXPECT_NE(jstr(items[0], "license"), jstr(items[1], "license"));
  EXPECT_TRUE(items[3].find("ok") && !jbool(items[3], "ok")) << to_json(res);
  EXPECT_EQ(jstr(items[3], "code"), "BAD_REQUEST");
  EXPECT_EQ(jint(res, "created"), 2);
  EXPECT_EQ(jint(res, "existing"), 1);
  EXPECT_EQ(jint(res, "refused"), 1);
  EXPECT_EQ(jint(res, "reserved"), 2);
  EXPECT_EQ(jint(res, "purchased"), 1500);
  const std::string license = jstr(items[0], "license");
  EXPECT_EQ(jarray(json({"computers", "--state", "active"})).size(), 0u);

  Value hb = stack_->call("license", "heartbeat",
                          {{"computer", Value("js-1")}, {"license", Value(license)}, {"version", Value("8.2")}});
  ASSERT_EQ(test::str(hb, "status"), "licensed") << to_json(hb);
  Value st = json({"status"});
  EXPECT_EQ(jstr(st, "serial"), "SN-JSON");
  EXPECT_EQ(jint(st, "purchased"), 1500);
  EXPECT_EQ(jint(st, "reserved"), 2);
  EXPECT_EQ(jint(st, "active"), 1);
  Value all = json({"computers", "--sort", "last-seen"});
  ASSERT_EQ(jarray(all).size(), 2u) << to_json(all);
  EXPECT_EQ(jstr(jarray(all)[0], "computer"), "JS-1");
  EXPECT_EQ(jstr(jarray(all)[0], "state"), "active");
  EXPECT_EQ(jstr(jarray(all)[0], "version"), "8.2");
  EXPECT_EQ(jstr(jarray(all)[1], "computer"), "JS-2");
  EXPECT_EQ(jstr(jarray(all)[1], "state"), "reserved");

  Value one = json({"computer", "js-1"});
  EXPECT_EQ(jstr(one.find("setup") ? *one.find("setup") : Value(), "license"), license) << to_json(one);
  EXPECT_EQ(jstr(one.find("state") ? *one.find("state") : Value(), "state"), "active") << to_json(one);
  EXPECT_EQ(jstr(one.find("state") ? *one.find("state") : Value(), "version"), "8.2") << to_json(one);
  std::set<std::string> types;
  for (const Value& e : jarray(one, "activity")) {
    EXPECT_EQ(jstr(e, "computer"), "JS-1") << to_json(e);
    types.insert(jstr(e, "type"));
  }
  EXPECT_TRUE(types.count("license.reserved") && types.count("client.licensed")) << to_json(one);

  Value setup = json({"setup-info", "js-2"});
  EXPECT_EQ(jstr(setup, "computer"), "JS-2");
  EXPECT_EQ(jstr(setup, "license"), jstr(items[1], "license"));
  EXPECT_EQ(setup.find("ok"), nullptr) << to_json(setup);
  Value wrote = json({"setup-info", "js-2", "--out", dir_.file("js-2.json")});
  EXPECT_EQ(jstr(wrote, "file"), dir_.file("js-2.json"));
  EXPECT_EQ(jstr(parse_json(dir_, test::read_file(dir_.file("js-2.json"))), "license"), jstr(setup, "license"));

  Value log = json({"log", "--type", "license.reserved"});
  ASSERT_EQ(jarray(log).size(), 2u) << to_json(log);
  EXPECT_EQ(jstr(jarray(log)[0], "type"), "license.reserved");
  EXPECT_EQ(jstr(jarray(log)[0], "computer"), "JS-1");
  EXPECT_EQ(jstr(jarray(log)[1], "computer"), "JS-2");
  EXPECT_EQ(jarray(json({"log", "--type", "license.reserved", "--limit", "1"})).size(), 1u);
  EXPECT_EQ(jarray(json({"log", "--type", "client.licensed"})).size(), 1u);
  EXPECT_EQ(jarray(json({"log", "--type", "no.such.type"})).size(), 0u);

  Value cmd = json({"command", "js-1", "reboot", "delay=5"});
  EXPECT_NE(jstr(cmd, "id"), "");
  Value services = json({"services"});
  std::map<std::string, Value> by_name;
  for (const Value& sv : jarray(services)) by_name[jstr(sv, "service")] = sv;
  EXPECT_EQ(jstr(by_name["license"], "state"), "up") << to_json(services);
  EXPECT_GE(jint(by_name["admin"], "workers"), 1) << to_json(services);
  EXPECT_TRUE(by_name.count("broker.control")) << to_json(services);
  Value fw = json({"firewall", "--tool", "ufw"});
  EXPECT_FALSE(jarray(fw, "ports").empty()) << to_json(fw);
  EXPECT_NE(jstr(fw.find("rules") ? *fw.find("rules") : Value(), "ufw").find("ufw allow"), std::string::npos);
  Value keys = json({"keys", "create", "--out", dir_.file("keys")});
  EXPECT_EQ(jstr(keys, "public_key"), test::read_file(dir_.file("keys/admin.pub")).substr(0, 40));
  Value echo = json({"call", "admin", "status"});
  EXPECT_EQ(jint(echo, "reserved"), 2);

  // A stream: one object a line (the log after JS-1's reservation).
  CtlRun events = ctl({"events", "--since", jstr(jarray(log)[0], "id"), "--count", "2", "--json"});
  EXPECT_EQ(events.code, 0) << events.err;
  const auto lines = lines_of(events.out);
  ASSERT_EQ(lines.size(), 2u) << events.out;
  EXPECT_EQ(jstr(parse_json(dir_, lines[0]), "computer"), "JS-2");
  EXPECT_EQ(jstr(parse_json(dir_, lines[1]), "type"), "client.licensed");

  // Refused: exit 1, the reason on stderr, nothing on stdout.
  CtlRun refused = ctl({"setup-info", "nobody", "--json"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_EQ(refused.out, "");
  EXPECT_NE(refused.err.find("error: NOT_FOUND: "), std::string::npos) << refused.err;
  refused = ctl({"unlock", "garbage", "--json"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_EQ(refused.out, "");
  EXPECT_NE(refused.err.find("error: INVALID_UNLOCK_CODE: "), std::string::npos) << refused.err;
  // No server: exit 3.
  const std::string dead = "tcp://127.0.0.1:" + std::to_string(unused_port());
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"status"}, {"computers"}, {"registration"}, {"log"}}) {
    std::vector<std::string> all = {"--server", dead, "--timeout-ms", "300"};
    all.insert(all.end(), args.begin(), args.end());
    all.push_back("--json");
    CtlRun r = run_ctl(dir_, all);
    EXPECT_EQ(r.code, 3) << args[0] << "\n" << r.out << r.err;
    EXPECT_EQ(r.out, "") << args[0];
    EXPECT_NE(r.err.find("300 ms"), std::string::npos) << args[0] << ": " << r.err;
  }
}

TEST_F(CtlStackTest, EventsLiveAndCaughtUp) {
  ASSERT_NO_FATAL_FAILURE(unlock("SN-EV", 1000));
  auto id_of = [](const std::string& row) {  // the line's id (it ends "by ACTOR")
    for (const std::string& w : words(row))
      if (w.starts_with("id=")) return w.substr(3);
    return std::string();
  };
  const std::string out = dir_.file("events.out");
  test::Process events = start_ctl(
      {"--server", stack_->front(), "--events", stack_->events(), "events", "--count", "2"}, out);
  // Reserve until it has seen two (the subscription takes a moment).
  int i = 0;
  EXPECT_TRUE(test::wait_until(
      [&] {
        stack_->call("license.control", "reserve", {{"computer", Value("ev-" + std::to_string(i++))}});
        return !events.alive();
      },
      20s, 50ms));
  EXPECT_EQ(events.wait_exit(1s).value_or(-1), 0) << test::read_file(out + ".err");
  auto rows = lines_of(test::read_file(out));
  ASSERT_EQ(rows.size(), 2u) << test::read_file(out);
  for (const auto& row : rows) EXPECT_NE(row.find(" license.reserved computer=EV-"), std::string::npos) << row;

  // --since: the log after that id first, then live, without duplicates.
  // The subscriber may have caught the first two reservations, so the log
  // can hold as few as three events: add two so four are there for sure.
  for (const char* name : {"ev-extra-1", "ev-extra-2"})
    stack_->call("license.control", "reserve", {{"computer", Value(name)}});
  CtlRun log = ctl({"log"});
  auto logged = lines_of(log.out);
  ASSERT_GE(logged.size(), 4u);
  const std::string since = id_of(logged[logged.size() - 4]);
  CtlRun r = ctl({"events", "--since", since, "--count", "3"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out), std::vector<std::string>(logged.end() - 3, logged.end()));

  // Caught up, then live: every event once, in order.
  test::Process follow = start_ctl({"--server", stack_->front(), "--events", stack_->events(),
                                    "events", "--since", since, "--count", "8"},
                                   dir_.file("follow.out"));
  int j = 0;
  EXPECT_TRUE(test::wait_until(
      [&] {
        stack_->call("license.control", "reserve", {{"computer", Value("late-" + std::to_string(j++))}});
        return !follow.alive();
      },
      20s, 100ms));
  follow.wait_exit(1s);
  rows = lines_of(test::read_file(dir_.file("follow.out")));
  ASSERT_EQ(rows.size(), 8u) << test::read_file(dir_.file("follow.out"));
  std::set<std::string> ids;
  for (const auto& row : rows) ids.insert(id_of(row));
  EXPECT_EQ(ids.size(), 8u) << "a duplicate";
  EXPECT_EQ(rows[0], logged[logged.size() - 3]);
  EXPECT_NE(rows[3].find("computer=LATE-0 "), std::string::npos) << rows[3];

  // log --follow: what is there, then what comes, up to --limit.
  const std::string last = id_of(lines_of(ctl({"log"}).out).back());
  test::Process tail = start_ctl({"--server", stack_->front(), "log", "--follow", "--since", last,
                                  "--type", "license.reserved", "--limit", "2"},
                                 dir_.file("tail.out"));
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(tail.alive()) << test::read_file(dir_.file("tail.out"));
  stack_->call("license.control", "reserve", {{"computer", Value("tail-1")}});
  stack_->call("license.control", "reserve", {{"computer", Value("tail-1")}});  // no event
  stack_->call("license.control", "reserve", {{"computer", Value("tail-2")}});
  EXPECT_EQ(tail.wait_exit(10s).value_or(-1), 0);
  rows = lines_of(test::read_file(dir_.file("tail.out")));
  ASSERT_EQ(rows.size(), 2u) << test::read_file(dir_.file("tail.out"));
  EXPECT_NE(rows[0].find("computer=TAIL-1 "), std::string::npos) << rows[0];
  EXPECT_NE(rows[1].find("computer=TAIL-2 "), std::string::npos) << rows[1];
}

TEST_F(CtlStackTest, FirewallPrintsRulesAndAppliesOnlyWithYes) {
  const std::string front_port = port_of(stack_->front()), events_port = port_of(stack_->events());
  CtlRun r = ctl({"firewall"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ports:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(front_port + "/tcp"), std::string::npos) << r.out;
  for (const char* section : {"# nft\n", "# iptables\n", "# firewalld\n", "# ufw\n"})
    EXPECT_NE(r.out.find(section), std::string::npos) << section << r.out;
  r = ctl({"firewall", "--tool", "iptables"});
  EXPECT_EQ(r.out.find("ufw"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("iptables -A INPUT -p tcp --dport " + events_port), std::string::npos) << r.out;

  // Fake tools that record their arguments; the second ufw call fails in `failing`.
  const std::string fake = dir_.file("fakebin"), marker = dir_.file("ran");
  ::mkdir(fake.c_str(), 0700);
  write_text(fake + "/ufw", "#!/bin/sh\necho \"$@\" >> '" + marker + "'\n", 0755);
  write_text(fake + "/iptables", "#!/bin/sh\necho iptables >> '" + marker + "'\n", 0755);
  const std::map<std::string, std::string> path = {{"PATH", fake + ":/usr/bin:/bin"}};

  r = ctl({"firewall", "--apply", "--tool", "ufw"}, path);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("dry run"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nufw allow " + front_port + "/tcp\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nufw allow " + events_port + "/tcp\n"), std::string::npos) << r.out;
  EXPECT_EQ(mode_of(marker), 0u) << "a dry run ran something";

  // Detection: the first of nft, firewall-cmd, ufw, iptables on PATH.
  r = ctl({"firewall", "--apply"}, {{"PATH", fake}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("dry run for ufw"), std::string::npos) << r.out;
  EXPECT_EQ(mode_of(marker), 0u);
  r = ctl({"firewall", "--apply"}, {{"PATH", dir_.file("empty")}});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--tool"), std::string::npos) << r.err;

  r = ctl({"firewall", "--apply", "--tool", "ufw", "--yes"}, path);
  EXPECT_EQ(r.code, 0) << r.err;
  const auto ran = lines_of(test::read_file(marker));  // in port order
  EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()),
            (std::set<std::string>{"allow " + front_port + "/tcp", "allow " + events_port + "/tcp"}));
  EXPECT_EQ(ran.size(), 2u);

  ::unlink(marker.c_str());
  write_text(fake + "/ufw", "#!/bin/sh\necho \"$@\" >> '" + marker + "'\nexit 3\n", 0755);
  r = ctl({"firewall", "--apply", "--tool", "ufw", "--yes"}, path);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("exit status 3"), std::string::npos) << r.err;
  EXPECT_EQ(lines_of(test::read_file(marker)).size(), 1u) << "went on after a failure";
}

// primary-server in secure mode (like security_test): CURVE with the
// server's key, the admin role from the allow-list re-read on SIGHUP.
class CtlSecureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::run_capture({test::bin("primary-vendor"), "keygen", "--out", dir_.file("vendor")});
    server_ = test::Process::start(
        {test::bin("primary-server"), "--web", "127.0.0.1:0", "--data-dir", data(), "--front", "tcp://127.0.0.1:*",
         "--events", "tcp://127.0.0.1:*", "--vendor-key", dir_.file("vendor/vendor.pub"),
         "--license-workers", "1", "--heartbeat-ms", "200"},
        {}, dir_.file("server.log"));
    ASSERT_TRUE(test::wait_until([&] { return !endpoint("events").empty(); }, 15s))
        << test::read_file(dir_.file("server.log"));
  }
  void TearDown() override {
    server_.signal(SIGTERM);
    server_.wait_exit(10s);
    if (HasFailure()) std::cerr << "---- server log ----\n" << test::read_file(dir_.file("server.log"));
  }
  std::string data() const { return dir_.file("data"); }
  std::string endpoint(const std::string& key) const {
    for (const auto& line : lines_of(test::read_file(data() + "/run/endpoints")))
      if (line.starts_with(key + "=")) return line.substr(key.size() + 1);
    return {};
  }
  CtlRun ctl(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> all = {"--server", endpoint("front")};
    all.insert(all.end(), args.begin(), args.end());
    return run_ctl(dir_, all, env);
  }

  test::TempDir dir_{"pcsec"};
  test::Process server_;
};

TEST_F(CtlSecureTest, AdminKeyWorksOnceAllowedAndReloaded) {
  ASSERT_EQ(ctl({"keys", "create", "--out", dir_.file("me")}).code, 0);
  const std::string key = dir_.file("me/admin.key"), server_pub = data() + "/keys/server.pub";
  const std::vector<std::string> secure = {"--server-key", server_pub, "--client-key", key};
  auto with = [&](std::vector<std::string> args) {
    std::vector<std::string> all = secure;
    all.insert(all.end(), args.begin(), args.end());
    return all;
  };

  // Plain: the secure front door does not answer.
  CtlRun r = ctl({"--timeout-ms", "500", "status"});
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  // CURVE, but not (yet) an admin.
  r = ctl(with({"status"}));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("UNAUTHORIZED"), std::string::npos) << r.err;

  const std::string pub = test::read_file(dir_.file("me/admin.pub"));
  std::ofstream(data() + "/keys/admins", std::ios::app) << pub.substr(0, 40) << "  # me\n";
  ::kill(server_.pid(), SIGHUP);
  EXPECT_TRUE(test::wait_until([&] { return (r = ctl(with({"status"}))).code == 0; }, 15s, 200ms))
      << r.out << r.err;
  EXPECT_NE(r.out.find("purchased"), std::string::npos) << r.out;

  // The key text itself, from the environment, works as well as the file.
  const std::string server_key = test::read_file(server_pub).substr(0, 40);
  r = ctl({"status"}, {{"PRIMARY_SERVER_KEY", server_key}, {"PRIMARY_CLIENT_KEY", key}});
  EXPECT_EQ(r.code, 0) << r.err;
  // A fresh key (no --client-key) has the client role only.
  r = ctl({"--server-key", server_key, "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("UNAUTHORIZED"), std::string::npos) << r.err;

  // Licensing and the event stream over CURVE too; setup files carry the server key.
  r = ctl(with({"register", "SN-SEC"}));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string code = test::run_capture({test::bin("primary-vendor"), "unlock", "--key",
                                              dir_.file("vendor/vendor.key"), "--registration",
                                              lines_of(r.out).at(0), "--licenses", "100"});
  ASSERT_EQ(ctl(with({"unlock", code})).code, 0);
  const std::string out = dir_.file("events.out");
  std::vector<std::string> events_args = {"--server", endpoint("front"), "--events", endpoint("events")};
  for (const auto& a : with({"events", "--count", "1"})) events_args.push_back(a);
  test::Process events = start_ctl(events_args, out);
  int i = 0;
  EXPECT_TRUE(test::wait_until(
      [&] {
        ctl(with({"reserve", "sec-" + std::to_string(i++)}));
        return !events.alive();
      },
      20s, 100ms));
  EXPECT_NE(test::read_file(out).find(" license.reserved computer=SEC-"), std::string::npos)
      << test::read_file(out) << test::read_file(out + ".err");
  r = ctl(with({"setup-info", "sec-0"}));
  EXPECT_NE(r.out.find(R"("server_key":")" + server_key + "\""), std::string::npos) << r.out;
  // The server was told tcp://127.0.0.1:* for both endpoints: setup files and
  // firewall rules name the ports the broker bound, never "*".
  EXPECT_NE(r.out.find(R"("endpoints":[")" + endpoint("front") + "\"]"), std::string::npos) << r.out;
  r = ctl(with({"firewall", "--json"}));
  ASSERT_EQ(r.code, 0) << r.err;
  for (const std::string key : {"front", "events"}) {
    const std::string ep = endpoint(key);
    EXPECT_NE(r.out.find("\"port\":" + ep.substr(ep.rfind(':') + 1) + ","), std::string::npos) << key << ": " << r.out;
  }
  EXPECT_EQ(r.out.find('*'), std::string::npos) << r.out;
}

// Getting a seat back: transfer-request prints what the vendor needs, the
// vendor's code (the real primary-vendor) is applied with transfer, once.
TEST_F(CtlStackTest, TransferRequestVendorCodeAndTransfer) {
  unlock("SN-SEATS", 2);
  ASSERT_EQ(ctl({"reserve", "ws-01", "ws-02"}).code, 0);
  CtlRun r = ctl({"transfer-request", "ws-01", "ws-01-new"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto kv = key_values(r.out);
  EXPECT_TRUE(kv["registration"].starts_with("PS1-SN-SEATS-")) << r.out;
  EXPECT_EQ(kv["computer"], "WS-01") << r.out;
  EXPECT_EQ(kv["to"], "WS-01-NEW") << r.out;
  const std::string old_license = kv["license"];
  EXPECT_EQ(old_license.size(), 22u) << r.out;
  EXPECT_NE(r.out.find("vendor: primary-vendor transfer --key vendor.key --registration " + kv["registration"] +
                       " --computer WS-01 --license " + old_license + " --to WS-01-NEW\n"),
            std::string::npos)
      << r.out;
  r = ctl({"transfer-request", "ws-01", "ws-01-new", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"license\":\"" + old_license + "\""), std::string::npos) << r.out;

  const std::string code = test::run_capture({test::bin("primary-vendor"), "transfer", "--key",
                                              stack_->vendor_key_file(), "--registration", kv["registration"],
                                              "--computer", "WS-01", "--license", old_license, "--to", "ws-01-new"});
  r = ctl({"transfer", code});
  ASSERT_EQ(r.code, 0) << r.err;
  kv = key_values(r.out);
  EXPECT_EQ(kv["computer"], "WS-01") << r.out;
  EXPECT_EQ(kv["to"], "WS-01-NEW") << r.out;
  EXPECT_NE(kv["new license"], old_license) << r.out;
  EXPECT_EQ(kv["licenses in use"], "2 of 2") << r.out;
  r = ctl({"transfer", code});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("error: INVALID_SEAT_CODE: "), std::string::npos) << r.err;
  // The old name has nothing left to ask about.
  EXPECT_EQ(ctl({"transfer-request", "ws-01", "x"}).code, 1);
  EXPECT_EQ(ctl({"transfer-request", "ws-02", "bad name!"}).code, 2);

  // Retire: the same round for ws-02, and its seat is free.
  r = ctl({"retire-request", "ws-02"});
  ASSERT_EQ(r.code, 0) << r.err;
  kv = key_values(r.out);
  r = ctl({"retire", test::run_capture({test::bin("primary-vendor"), "retire", "--key", stack_->vendor_key_file(),
                                        "--registration", kv["registration"], "--computer", kv["computer"],
                                        "--license", kv["license"]})});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(key_values(r.out)["licenses in use"], "1 of 2") << r.out;
  EXPECT_EQ(ctl({"reserve", "ws-03"}).code, 0);
}

}  // namespace
}  // namespace primary
