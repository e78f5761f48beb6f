#include "web/charts.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace primary::web {
namespace {

constexpr int kWidth = 720, kHeight = 230;
constexpr int kLeft = 56, kRight = 120, kTop = 12, kBottom = 28;
// Per series: dash pattern of a line, fill of an area (patterns of chart.mustache).
const char* const kDashes[] = {"", "6 4", "2 3"};

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// A round axis top at or above `max` (1, 2 or 5 times a power of ten).
double nice_top(double max) {
  if (max <= 0) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(max)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= max) return m * p;
  return 10 * p;
}

std::string value_text(double v) {
  if (std::abs(v - std::round(v)) < 1e-9) return std::to_string(static_cast<int64_t>(std::llround(v)));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string text = buf;
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text;
}

std::string time_label(int64_t ms, bool hourly, bool with_date) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, hourly ? (with_date ? "%Y-%m-%d %H:00Z" : "%m-%d %H:00") : "%Y-%m-%d", &tm);
  return buf;
}

}  // namespace

PageData chart_data(const Chart& c) {
  const bool hourly = c.period_ms < 24 * 3600 * 1000;
  const size_t n = c.times.size();
  const double scale = static_cast<double>(std::max<int64_t>(c.scale, 1));
  const size_t shown = c.kind == ChartKind::Bars ? std::min<size_t>(c.series.size(), 1) : c.series.size();
  // Stacked: each series' top is the sum of it and those below.
  std::vector<std::vector<std::optional<double>>> top(shown, std::vector<std::optional<double>>(n));
  double max = 0;
  for (size_t i = 0; i < n; ++i) {
    double sum = 0;
    for (size_t s = 0; s < shown; ++s) {
      const auto& v = c.series[s].values;
      if (i >= v.size() || !v[i]) continue;
      const double x = static_cast<double>(*v[i]) / scale;
      sum = c.kind == ChartKind::Stacked ? sum + x : x;
      top[s][i] = sum;
      max = std::max(max, sum);
    }
  }
  const double ymax = nice_top(max);
  const int64_t t0 = n ? c.times.front() : 0;
  const int64_t t1 = n ? c.times.back() + c.period_ms : 1;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto x_of = [&](int64_t t) { return kLeft + plot_w * static_cast<double>(t - t0) / static_cast<double>(std::max<int64_t>(t1 - t0, 1)); };
  auto mid_x = [&](size_t i) { return x_of(c.times[i]) + plot_w * static_cast<double>(c.period_ms) / static_cast<double>(std::max<int64_t>(t1 - t0, 1)) / 2; };
  auto y_of = [&](double v) { return kTop + plot_h * (1 - v / ymax); };
  const double ybase = y_of(0);

  PageData d;
  d.set("id", c.id);
  d.set("title", c.title);
  d.set("unit", c.unit);
  d.set("width", std::to_string(kWidth));
  d.set("height", std::to_string(kHeight));
  d.set("x0", std::to_string(kLeft));
  d.set("x1", std::to_string(kWidth - kRight));
  d.set("ybase", num(ybase));
  d.set("xmid", num(kLeft + plot_w / 2));
  d.set("ymid", num(kTop + plot_h / 2));
  PageList yticks;
  for (int k = 0; k <= 4; ++k) {
    const double v = ymax * k / 4;
    PageData t;
    t.set("y", num(y_of(v)));
    t.set("label", value_text(v));
    t.set("xl", std::to_string(kLeft - 6));
    t.set("x0", std::to_string(kLeft));
    t.set("x1", std::to_string(kWidth - kRight));
    yticks.push_back(t);
  }
  d.set("yticks", yticks);
  PageList xticks;
  for (size_t k = 0; n && k < 6; ++k) {
    const size_t i = (n - 1) * k / 5;
    if (k && i == (n - 1) * (k - 1) / 5) continue;
    PageData t;
    t.set("x", num(mid_x(i)));
    t.set("y", std::to_string(kHeight - 8));
    t.set("label", time_label(c.times[i], hourly, false));
    xticks.push_back(t);
  }
  d.set("xticks", xticks);

  PageList lines, areas, dots, bars, legend;
  struct End {
    double y;
    std::string label, value;
  };
  std::vector<End> ends;
  size_t npoints = 0;
  std::string last;
  for (size_t s = 0; s < shown; ++s) {
    const std::string& label = c.series[s].label;
    const std::string fill = s == 0 ? "#9db7d6" : "url(#" + c.id + "-p" + std::to_string(s) + ")";
    std::string points, area_top;
    std::optional<double> last_value;
    double last_y = ybase;
    for (size_t i = 0; i < n; ++i) {
      if (!top[s][i]) continue;
      const double raw = static_cast<double>(*c.series[s].values[i]) / scale;
      const std::string tip = time_label(c.times[i], hourly, true) + ": " + label + " " + value_text(raw) +
                              (c.unit.empty() ? "" : " " + c.unit);
      const double x = mid_x(i), y = y_of(*top[s][i]);
      if (c.kind == ChartKind::Bars) {
        const double w = std::max(1.0, plot_w * static_cast<double>(c.period_ms) / static_cast<double>(t1 - t0) - 2);
        PageData b;
        b.set("x", num(x - w / 2));
        b.set("y", num(y));
        b.set("w", num(w));
        b.set("h", num(ybase - y));
        b.set("tip", tip);
        bars.push_back(b);
      } else {
        points += (points.empty() ? "" : " ") + num(x) + "," + num(y);
        PageData dot;
        dot.set("series", label);
        dot.set("x", num(x));
        dot.set("y", num(y));
        dot.set("tip", tip);
        dots.push_back(dot);
      }
      if (s == 0) ++npoints;
      last_value = raw;
      last_y = y;
    }
    if (c.kind == ChartKind::Stacked && !points.empty()) {
      // Down to the series below (or the axis), right to left.
      std::string lower;
      for (size_t i = n; i-- > 0;) {
        if (!top[s][i]) continue;
        const double below = s == 0 || !top[s - 1][i] ? 0 : *top[s - 1][i];
        lower += " " + num(mid_x(i)) + "," + num(y_of(below));
      }
      PageData a;
      a.set("label", label);
      a.set("points", points + lower);
      a.set("fill", fill);
      areas.push_back(a);
    } else if (c.kind == ChartKind::Lines && !points.empty()) {
      PageData l;
      l.set("label", label);
      l.set("points", points);
      l.set("dash", std::string(kDashes[s % 3]));
      lines.push_back(l);
    }
    if (last_value) {
      ends.push_back({last_y, label, value_text(*last_value)});
      if (s == 0) last = value_text(*last_value);
    }
    PageData key;
    key.set("label", label);
    key.set("fill", c.kind == ChartKind::Lines ? "none" : c.kind == ChartKind::Bars ? "#1f3a5f" : fill);
    key.set("dash", c.kind == ChartKind::Lines ? std::string(kDashes[s % 3]) : std::string());
    legend.push_back(key);
  }
  d.set("lines", lines);
  d.set("areas", areas);
  d.set("dots", dots);
  d.set("bars", bars);
  // Labels at the right end, top to bottom, at least a line apart.
  std::sort(ends.begin(), ends.end(), [](const End& a, const End& b) { return a.y < b.y; });
  PageList end_list;
  double floor_y = kTop - 12.0;
  for (const auto& e : ends) {
    const double y = std::max(e.y, floor_y + 12);
    floor_y = y;
    PageData item;
    item.set("x", std::to_string(kWidth - kRight + 6));
    item.set("y", num(y));
    item.set("label", e.label);
    item.set("value", e.value);
    end_list.push_back(item);
  }
  d.set("ends", end_list);
  d.set("legend", legend);
  d.set("npoints", std::to_string(npoints));
  d.set("empty", npoints == 0);
  d.set("last", last);
  d.set("last_text", last.empty() ? "none" : last + (c.unit.empty() ? "" : " " + c.unit));
  return d;
}

}  // namespace primary::web
