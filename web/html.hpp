// Small pieces of the console's server-rendered HTML. Every value that came
// from the server or the user goes through esc() (text and attributes) or
// url_component() (inside a link).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace primary::web {

// & < > " ' as character references.
std::string esc(std::string_view text);
// Percent-encodes everything but A-Z a-z 0-9 - _ . ~
std::string url_component(std::string_view text);
// Unix ms -> "2024-05-01 12:00:00Z"; "-" for 0 or less.
std::string time_text(int64_t unix_ms);

// The embedded stylesheet and script (served as /static/style.css and /static/app.js).
extern const std::string_view kStyleCss;
extern const std::string_view kAppJs;
// The console's icon (SVG), also answered for /favicon.ico.
extern const std::string_view kIconSvg;

}  // namespace primary::web
