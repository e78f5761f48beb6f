#include "web/html.hpp"

#include <ctime>

namespace primary::web {

std::string esc(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string url_component(std::string_view text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
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

const std::string_view kStyleCss = R"css(
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#f4f6f9}
header{background:#1f3a5f;color:#fff;display:flex;align-items:center;gap:1.5em;padding:.6em 1.2em}
header .brand{font-weight:600}
header nav a{color:#cfe0f5;text-decoration:none;margin-right:1em}
header nav a.on{color:#fff;border-bottom:2px solid #fff}
header form{margin-left:auto}
main{max-width:1100px;margin:1.2em auto;padding:0 1em}
h1{font-size:1.4em;margin:.2em 0 .8em}
h2{font-size:1.1em;margin:1.2em 0 .5em}
section.card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:1em 1.2em;margin-bottom:1em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e6eaf0;vertical-align:top}
th{background:#eef2f7;font-weight:600}
table.kv th{width:14em;background:none}
.counts{display:flex;flex-wrap:wrap;gap:.8em}
.counts div{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:.6em 1em;min-width:8em}
.counts b{display:block;font-size:1.6em}
.flash{padding:.6em 1em;border-radius:6px;margin-bottom:1em;background:#e5f4e8;border:1px solid #9fd3aa}
.error{padding:.6em 1em;border-radius:6px;margin-bottom:1em;background:#fdecec;border:1px solid #eaa5a5}
.code{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
pre{background:#f0f3f7;padding:.8em;overflow:auto;border-radius:4px}
form.inline{display:inline}
input,select,textarea,button{font:inherit;padding:.3em .5em}
textarea{width:100%;min-height:5em}
button{background:#1f3a5f;color:#fff;border:0;border-radius:4px;cursor:pointer}
button.plain{background:none;color:#cfe0f5;border:1px solid #5c7aa3}
.muted{color:#6b7685}
.state-active{color:#17803d}.state-lost{color:#b42318}.state-reserved{color:#6b7685}
.pager{margin:.8em 0}
#live{font-size:.9em;margin-left:1em}
.login{max-width:380px;margin:4em auto}
)css";

const std::string_view kIconSvg =
    R"(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1f4e79"/>)"
    R"(<path d="M11 25V7h7a5.5 5.5 0 0 1 0 11h-7" fill="none" stroke="#fff" stroke-width="3.2" stroke-linejoin="round"/></svg>)";

const std::string_view kAppJs = R"js(
'use strict';
// Activity: follow the event stream (Server-Sent Events) and append each
// event to the table. The browser reconnects on its own and sends the last
// id it got (Last-Event-ID), so the server resumes without gaps.
(function () {
  var table = document.getElementById('activity');
  if (!table || !table.dataset.stream || !window.EventSource) return;
  var body = table.tBodies[0];
  var live = document.getElementById('live');
  function cell(row, text) {
    var td = document.createElement('td');
    td.textContent = text;
    row.appendChild(td);
  }
  function when(ms) {
    var d = new Date(ms);
    return isNaN(d) ? '-' : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  var es = new EventSource(table.dataset.stream);
  es.onopen = function () { if (live) live.textContent = 'live'; };
  es.onerror = function () { if (live) live.textContent = 'reconnecting...'; };
  es.onmessage = function (msg) {
    var ev;
    try { ev = JSON.parse(msg.data); } catch (e) { return; }
    var empty = document.getElementById('empty');
    if (empty) empty.remove();
    var row = document.createElement('tr');
    cell(row, when(ev.ts));
    cell(row, ev.type || '');
    cell(row, ev.computer || '');
    var details = [];
    Object.keys(ev).sort().forEach(function (k) {
      if (['id', 'ts', 'type', 'computer'].indexOf(k) < 0)
        details.push(k + '=' + (typeof ev[k] === 'string' ? ev[k] : JSON.stringify(ev[k])));
    });
    cell(row, details.join(' '));
    cell(row, ev.id || '');
    body.appendChild(row);
  };
})();
)js";

}  // namespace primary::web
