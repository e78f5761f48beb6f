#include "admin/scripts.hpp"

#include <cstdlib>
#include <string>

#include "admin/lua_scripts.hpp"

namespace primary::admin {

const Script& computers_script() { return embedded_script<lua::kComputers>(); }
const Script& computer_script() { return embedded_script<lua::kComputer>(); }
const Script& stale_count_script() { return embedded_script<lua::kStaleCount>(); }

namespace {

int64_t int_of(const RedisReply& r) {
  if (r.is_int()) return r.integer;
  if (r.is_str() && !r.str.empty()) return std::atoll(r.str.c_str());
  return 0;
}

std::optional<int64_t> known_int(const RedisReply& r) {
  if (r.is_str() && r.str.empty()) return std::nullopt;
  return int_of(r);
}

// The describe() row in the first ten elements of `e`.
std::optional<ComputerRow> row_of(const std::vector<RedisReply>& e) {
  if (e.size() < 10) return std::nullopt;
  for (size_t i = 0; i < 10; ++i)
    if (!e[i].is_str() && !e[i].is_int()) return std::nullopt;
  ComputerRow row;
  row.name = e[0].str;
  row.license = e[1].str;
  row.state = e[2].str;
  row.reserved_at = int_of(e[3]);
  row.first_seen = known_int(e[4]);
  row.last_seen = known_int(e[5]);
  row.version = e[6].str;
  row.peer = e[7].str;
  row.clock_skew_s = known_int(e[8]);
  row.stale = e[9].is_str() && e[9].str == "1";
  return row;
}

}  // namespace

std::optional<ComputerRow> computer_row(const RedisReply& row) {
  if (!row.is_array() || row.elements.size() != 10) return std::nullopt;
  return row_of(row.elements);
}

std::optional<ComputersPage> computers_page(const RedisReply& r) {
  if (!r.is_array() || r.elements.size() != 2 || !r.elements[0].is_array() || !r.elements[1].is_str())
    return std::nullopt;
  ComputersPage page;
  page.next = r.elements[1].str;
  for (const auto& row : r.elements[0].elements)
    if (auto c = computer_row(row)) page.rows.push_back(*c);
  return page;
}

std::optional<ComputerAnswer> computer_answer(const RedisReply& r) {
  if (!r.is_array() || r.elements.size() != 11) return std::nullopt;
  auto row = row_of(r.elements);
  if (!row) return std::nullopt;
  return ComputerAnswer{*row, int_of(r.elements[10])};
}

}  // namespace primary::admin
