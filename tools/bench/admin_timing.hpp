// What one admin page costs at a given fleet size: `admin.computers` pages of
// 100 (first page and deep in the listing, by name and by last seen, with a
// state filter) and `admin.status`, each the median of repeated calls.
#pragma once

#include <zmq.hpp>

#include <map>
#include <string>

namespace primary::bench {

// Median milliseconds per request kind, e.g. "computers name" -> 1.2; a kind
// whose request failed is missing.
std::map<std::string, double> admin_timings(zmq::context_t& ctx, const std::string& front, int repeats = 30);

// Prints both sets side by side with their ratio and whether each is within
// `bound` (the target: 2x); returns the largest ratio.
double report_admin_timings(const std::map<std::string, double>& small, const std::string& small_label,
                            const std::map<std::string, double>& large, const std::string& large_label,
                            double bound = 2.0);

}  // namespace primary::bench
