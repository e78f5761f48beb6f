// The fleet export: every computer of admin.computers as CSV or as JSON
// lines, for `primaryctl computers --csv/--jsonl` and the console's
// "Export CSV". One implementation, so both give the same bytes.
//
// Columns, in this order: name, state (reserved = never seen, active,
// lost), license, reserved_at, first_seen, last_seen, version, peer. Times
// are ISO-8601 UTC to the second ("2026-12-08T00:00:00Z"); what is not
// known is an empty cell (CSV) or null (JSON).
//
// CSV follows RFC 4180: CRLF line ends, a header row, a cell quoted when it
// holds a comma, a quote, CR or LF, quotes doubled. Formula-injection
// guard: a cell a spreadsheet would evaluate, one starting with =, +, - or
// @, gets a leading apostrophe ('=cmd stays text). JSON lines carry the
// values unchanged.
//
// FleetExport reads admin.computers a page at a time and hands out the text
// of one page per next() call: the whole fleet is never held in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/errors.hpp"
#include "common/value.hpp"

namespace primary {

enum class ExportFormat { Csv, Jsonl };

// The CSV header row, without its line end.
inline constexpr std::string_view kFleetCsvHeader = "name,state,license,reserved_at,first_seen,last_seen,version,peer";

// One CSV cell: guarded against formula injection, then quoted as RFC 4180 needs.
std::string csv_cell(std::string_view text);
// Unix ms as ISO-8601 UTC to the second.
std::string iso_utc_seconds(int64_t unix_ms);
// The header (CSV: the header row and CRLF; JSON lines: nothing).
std::string export_header(ExportFormat format);
// One admin.computers item as a line, with its line end (CRLF for CSV, LF
// for JSON lines).
std::string export_row(ExportFormat format, const Value& item);

class FleetExport {
 public:
  // Asks admin.computers with these fields; its reply map (ok or not), or
  // the transport error.
  using Call = std::function<Result<Value>(Value::Map fields)>;

  // `state`: only computers in it ('' for all); `sort`: name or last-seen;
  // `page`: computers per admin.computers call (at most 1000).
  FleetExport(ExportFormat format, Call call, std::string state = {}, std::string sort = "name",
              int64_t page = 1000);

  // The text of the next page (the header comes with the first); nullopt
  // once every page was given; an error when a page could not be read (an
  // error reply becomes its code and message).
  Result<std::optional<std::string>> next();
  int64_t rows() const { return rows_; }

 private:
  ExportFormat format_;
  Call call_;
  std::string state_, sort_, cursor_;
  int64_t page_;
  int64_t rows_ = 0;
  bool started_ = false, done_ = false;
};

}  // namespace primary
