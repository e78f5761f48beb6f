// The Overview's charts of the fleet's history (admin.history), drawn as
// SVG on the server by the template web/templates/chart.mustache (a
// partial of overview.mustache): no script, nothing outside the console.
// Each series has its own dash pattern or fill pattern and a text label,
// so a chart reads without colour; every point or bar carries a <title>
// (the browser shows it on hover) with its time and value; axes are
// labelled with units.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "web/pages.hpp"

namespace primary::web {

struct ChartSeries {
  std::string label;
  std::vector<std::optional<int64_t>> values;  // one per time of the chart; nullopt: no sample
};

enum class ChartKind {
  Lines,    // a line per series, a dot per value
  Stacked,  // series stacked as areas, the first at the bottom
  Bars,     // the first series as bars
};

struct Chart {
  std::string id, title, unit;
  ChartKind kind = ChartKind::Lines;
  std::vector<int64_t> times;  // Unix ms, ascending: the period starts
  int64_t period_ms = 3600 * 1000;
  std::vector<ChartSeries> series;
  int64_t scale = 1;  // values are divided by this for the axis and labels (bytes -> MiB)
};

// The template data of `chart` for chart.mustache.
PageData chart_data(const Chart& chart);

}  // namespace primary::web
