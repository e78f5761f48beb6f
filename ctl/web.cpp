// primaryctl web-password: sets the web console's admin password. The
// console keeps only its Argon2id hash (DATA/keys/web.password, 0600); see
// web/password.hpp. Changing it ends every open console session.
#include <termios.h>
#include <unistd.h>

#include <istream>
#include <memory>
#include <ostream>

#include "ctl/commands.hpp"
#include "web/password.hpp"

namespace primary::ctl {
namespace {

// One line from the terminal with echo off; nullopt at end of input.
std::optional<std::string> ask_hidden(Context& ctx, const std::string& prompt) {
  ctx.err << prompt << std::flush;
  termios old{};
  const bool tty = ::tcgetattr(STDIN_FILENO, &old) == 0;
  if (tty) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  const bool got = static_cast<bool>(std::getline(ctx.host.in(), line));
  if (tty) ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
  ctx.err << "\n";
  if (!got) return std::nullopt;
  return line;
}

}  // namespace

Action declare_web_password(CLI::App& sub) {
  auto dir = std::make_shared<std::string>("./var");
  sub.add_option("--data-dir", *dir,
                 "The server's data directory; the hash goes to DATA/keys/web.password")
      ->envname("PRIMARY_DATA_DIR");
  return [dir](Context& ctx) {
    std::optional<std::string> password;
    if (::isatty(STDIN_FILENO)) {
      password = ask_hidden(ctx, "New web console password: ");
      auto again = ask_hidden(ctx, "Again: ");
      if (!password || !again || *password != *again) {
        ctx.err << "primaryctl: the two passwords differ; nothing changed\n";
        return static_cast<int>(kUsage);
      }
    } else {
      std::string line;
      if (std::getline(ctx.host.in(), line)) password = line;
      while (password && !password->empty() && (password->back() == '\r' || password->back() == '\n'))
        password->pop_back();
    }
    if (!password) {
      ctx.err << "primaryctl: web-password: no password on stdin\n";
      return static_cast<int>(kUsage);
    }
    if (auto why = web::password_problem(*password)) {
      ctx.err << "primaryctl: web-password: " << *why << "\n";
      return static_cast<int>(kUsage);
    }
    const std::string path = web::password_file(*dir);
    if (auto set = web::set_password(path, *password); !set) {
      ctx.err << "primaryctl: " << set.error().message << "\n";
      return static_cast<int>(kServerError);
    }
    if (ctx.json)
      print_json(ctx, Value(Value::Map{{"password_file", Value(path)}}));
    else
      ctx.out << "web console password set (" << path << "); open sessions end at their next request\n";
    return static_cast<int>(kOk);
  };
}

}  // namespace primary::ctl
