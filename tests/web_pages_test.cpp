// The console's page templates (web/templates/*.mustache, pages.hpp): each
// parses, writes every value escaped, and puts unescaped only the output of
// another template. Whatever a computer name, event field or reply holds, it
// cannot reach a page as markup.
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

#include "common/text.hpp"
#include "web/pages.hpp"

namespace primary::web {
namespace {

const std::string kHostile = "<script>alert(1)</script>\"'&";
const std::string kEscaped = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&apos;&amp;";
// The only names a template may write unescaped: another template's output.
const std::set<std::string> kRendered = {"body", "events"};

struct Tags {
  std::set<std::string> values, sections, unescaped;
};

Tags tags_of(const std::string& text) {
  Tags t;
  static const std::regex tag(R"(\{\{(\{|&|#|\^|/|!|>)?\s*([A-Za-z_.]+)\s*\}?\}\})");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), tag); it != std::sregex_iterator(); ++it) {
    const std::string kind = (*it)[1], name = (*it)[2];
    if (kind == "{" || kind == "&") t.unescaped.insert(name);
    else if (kind == "#" || kind == "^") t.sections.insert(name);
    else if (kind.empty() && name != ".") t.values.insert(name);
  }
  return t;
}

// Data that shows every section and puts kHostile into every escaped value,
// at the top and one section down.
PageData hostile_data(const Tags& t) {
  PageData inner;
  for (const auto& s : t.sections) inner.set(s, true);
  for (const auto& v : t.values) inner.set(v, kHostile);
  PageData outer;
  for (const auto& s : t.sections) outer.set(s, PageList{inner});
  for (const auto& v : t.values) outer.set(v, kHostile);
  for (const auto& u : t.unescaped) outer.set(u, std::string());
  return outer;
}

TEST(WebPages, EveryTemplateParses) {
  const auto names = page_names();
  for (const char* expected : {"layout", "login", "error", "http_error", "overview", "computers", "computer",
                               "events", "activity", "updates", "firewall"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  for (const auto& name : names) {
    kainjow::mustache::mustache tmpl{std::string(page_template(name))};
    EXPECT_TRUE(tmpl.is_valid()) << name << ": " << tmpl.error_message();
  }
}

TEST(WebPages, OnlyRenderedTemplatesGoInUnescaped) {
  for (const auto& name : page_names())
    for (const auto& u : tags_of(std::string(page_template(name))).unescaped)
      EXPECT_TRUE(kRendered.count(u)) << name << " writes {{{" << u << "}}} unescaped";
}

// Computer names and every other value (event details, flash messages,
// titles, broker error text) reach each page escaped.
TEST(WebPages, AHostileValueIsEscapedOnEveryPage) {
  for (const auto& name : page_names()) {
    const Tags t = tags_of(std::string(page_template(name)));
    const std::string html = render_page(name, hostile_data(t));
    EXPECT_EQ(html.find("<script>"), std::string::npos) << name << ":\n" << html;
    if (!t.values.empty()) {
      EXPECT_NE(html.find(kEscaped), std::string::npos) << name << ":\n" << html;
    }
  }
}

TEST(WebPages, TheComputerListAndPageEscapeAHostileComputerName) {
  PageData row;
  row.set("name", kHostile);
  row.set("url_name", url_component(kHostile));
  PageData list;
  list.set("computers", PageList{row});
  const std::string computers = render_page("computers", list);
  EXPECT_EQ(computers.find("<script>"), std::string::npos) << computers;
  EXPECT_NE(computers.find(">" + kEscaped + "</a>"), std::string::npos) << computers;
  EXPECT_NE(computers.find("href=\"/computers/%3Cscript%3Ealert%281%29%3C%2Fscript%3E%22%27%26\""),
            std::string::npos) << computers;

  PageData event;
  event.set("computer", kHostile);
  PageData events;
  events.set("events", PageList{event});
  PageData page;
  page.set("name", kHostile);
  page.set("events", render_page("events", events));
  const std::string computer = render_page("computer", page);
  EXPECT_EQ(computer.find("<script>"), std::string::npos) << computer;
  EXPECT_NE(computer.find("<span id=\"computer\">" + kEscaped + "</span>"), std::string::npos) << computer;
  EXPECT_NE(computer.find("<td>" + kEscaped + "</td>"), std::string::npos) << computer;

  PageData layout;
  layout.set("title", kHostile);
  layout.set("body", computer);
  const std::string html = render_page("layout", layout);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_NE(html.find("<title>" + kEscaped + " - Primary Server</title>"), std::string::npos) << html;
}

TEST(WebPages, StaticFilesHaveTheirTypesAndNothingElseIsServed) {
  ASSERT_TRUE(static_file("style.css"));
  EXPECT_EQ(static_file("style.css")->content_type, "text/css; charset=utf-8");
  ASSERT_TRUE(static_file("app.js"));
  EXPECT_NE(static_file("app.js")->text.find("EventSource"), std::string_view::npos);
  ASSERT_TRUE(static_file("icon.svg"));
  EXPECT_EQ(static_file("icon.svg")->text.substr(0, 4), "<svg");
  EXPECT_FALSE(static_file("layout.mustache"));
  EXPECT_FALSE(static_file("../templates/layout.mustache"));
}

}  // namespace
}  // namespace primary::web
