#include "web/pages.hpp"

#include <ctime>
#include <stdexcept>

#include "web/assets.hpp"

namespace primary::web {
namespace {

constexpr std::string_view kTemplateDir = "templates/";
constexpr std::string_view kTemplateExt = ".mustache";
constexpr std::string_view kStaticDir = "static/";

std::optional<std::string_view> embedded(std::string_view path) {
  for (const auto& f : kEmbeddedFiles)
    if (f.path == path) return f.text;
  return std::nullopt;
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

}  // namespace

std::string_view page_template(std::string_view name) {
  auto text = embedded(std::string(kTemplateDir) + std::string(name) + std::string(kTemplateExt));
  if (!text) throw std::logic_error("no page template " + std::string(name));
  return *text;
}

std::string render_page(std::string_view name, const PageData& data) {
  const std::string text(page_template(name));
  kainjow::mustache::mustache tmpl{text};
  if (!tmpl.is_valid())
    throw std::logic_error("page template " + std::string(name) + ": " + tmpl.error_message());
  std::string out;
  if (text.find("{{>") == std::string::npos) {
    out = tmpl.render(data);
  } else {
    // {{> other}}: every template is a partial of every other.
    PageData with_partials = data;
    for (const auto& partial : page_names())
      with_partials.set(partial, kainjow::mustache::partial([partial] { return std::string(page_template(partial)); }));
    out = tmpl.render(with_partials);
  }
  if (!tmpl.is_valid())
    throw std::logic_error("page template " + std::string(name) + ": " + tmpl.error_message());
  return out;
}

std::vector<std::string> page_names() {
  std::vector<std::string> names;
  for (const auto& f : kEmbeddedFiles)
    if (f.path.substr(0, kTemplateDir.size()) == kTemplateDir && ends_with(f.path, kTemplateExt))
      names.emplace_back(f.path.substr(kTemplateDir.size(),
                                       f.path.size() - kTemplateDir.size() - kTemplateExt.size()));
  return names;
}

std::optional<StaticFile> static_file(std::string_view name) {
  static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".svg", "image/svg+xml"}};
  if (name.find('/') != std::string_view::npos) return std::nullopt;
  auto text = embedded(std::string(kStaticDir) + std::string(name));
  if (!text) return std::nullopt;
  for (const auto& [ext, type] : kTypes)
    if (ends_with(name, ext)) return StaticFile{*text, type};
  return std::nullopt;
}

std::string time_text(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

}  // namespace primary::web
