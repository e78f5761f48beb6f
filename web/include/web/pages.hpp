// The console's server-rendered pages and static files. Pages are Mustache
// templates (web/templates/*.mustache) and the stylesheet, script and icon
// are files under web/static/, all embedded at build time
// (cmake/EmbedFiles.cmake). A template writes every value with {{name}}, so
// it is HTML-escaped on the way in (text and attributes alike); {{{name}}}
// is only for the output of another template (a page body in the layout).
#pragma once

#include <kainjow/mustache.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace primary::web {

using PageData = kainjow::mustache::data;
using PageList = kainjow::mustache::list;

// Renders web/templates/<name>.mustache with `data`. A template that is
// missing or does not parse throws std::logic_error.
std::string render_page(std::string_view name, const PageData& data);
// The names of all templates ("layout", "login", ...).
std::vector<std::string> page_names();
// The text of a template, for tests.
std::string_view page_template(std::string_view name);

// A file served under /static/ ("style.css", "app.js", "icon.svg") and its
// Content-Type; nullopt for any other name.
struct StaticFile {
  std::string_view text;
  std::string_view content_type;
};
std::optional<StaticFile> static_file(std::string_view name);

// Unix ms -> "2024-05-01 12:00:00Z"; "-" for 0 or less.
std::string time_text(int64_t unix_ms);

}  // namespace primary::web
