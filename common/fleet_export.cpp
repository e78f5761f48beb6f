#include "common/fleet_export.hpp"

#include <ctime>

#include "common/names.hpp"

namespace primary {
namespace {

constexpr char kNameColumn[] = "name";  // the export's column for field::kComputer

// Text of a time field; '' when the item has none.
std::string time_of(const Value& item, std::string_view key) {
  const Value* v = item.find(key);
  return v && v->is_int() ? iso_utc_seconds(v->as_int()) : std::string();
}

Value time_value(const Value& item, std::string_view key) {
  const Value* v = item.find(key);
  return v && v->is_int() ? Value(iso_utc_seconds(v->as_int())) : Value();
}

Value str_value(const Value& item, std::string_view key) {
  const Value* v = item.find(key);
  return v && v->is_str() ? *v : Value();
}

}  // namespace

std::string csv_cell(std::string_view text) {
  std::string cell;
  if (!text.empty() && (text[0] == '=' || text[0] == '+' || text[0] == '-' || text[0] == '@')) cell = "'";
  cell += text;
  if (cell.find_first_of(",\"\r\n") == std::string::npos) return cell;
  std::string quoted = "\"";
  for (char c : cell) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string iso_utc_seconds(int64_t unix_ms) {
  int64_t s = unix_ms / 1000;
  if (unix_ms % 1000 < 0) --s;
  const std::time_t t = static_cast<std::time_t>(s);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string export_header(ExportFormat format) {
  return format == ExportFormat::Csv ? std::string(kFleetCsvHeader) + "\r\n" : std::string();
}

std::string export_row(ExportFormat format, const Value& item) {
  if (format == ExportFormat::Jsonl) {
    Value::Map row{{kNameColumn, str_value(item, field::kComputer)},
                   {field::kState, str_value(item, field::kState)},
                   {field::kLicense, str_value(item, field::kLicense)},
                   {field::kReservedAt, time_value(item, field::kReservedAt)},
                   {field::kFirstSeen, time_value(item, field::kFirstSeen)},
                   {field::kLastSeen, time_value(item, field::kLastSeen)},
                   {field::kVersion, str_value(item, field::kVersion)},
                   {field::kPeer, str_value(item, field::kPeer)}};
    return to_json(Value(std::move(row))) + "\n";
  }
  std::string line;
  for (const std::string& cell :
       {reply_str(item, field::kComputer), reply_str(item, field::kState), reply_str(item, field::kLicense),
        time_of(item, field::kReservedAt), time_of(item, field::kFirstSeen), time_of(item, field::kLastSeen),
        reply_str(item, field::kVersion), reply_str(item, field::kPeer)}) {
    line += csv_cell(cell);
    line += ',';
  }
  line.back() = '\r';
  return line + "\n";
}

FleetExport::FleetExport(ExportFormat format, Call call, std::string state, std::string sort, int64_t page)
    : format_(format), call_(std::move(call)), state_(std::move(state)), sort_(std::move(sort)), page_(page) {}

Result<std::optional<std::string>> FleetExport::next() {
  if (done_) return std::optional<std::string>();
  Value::Map fields{{field::kLimit, Value(page_)}, {field::kSort, Value(sort_)}};
  if (!state_.empty()) fields.emplace_back(field::kState, Value(state_));
  if (!cursor_.empty()) fields.emplace_back(field::kCursor, Value(cursor_));
  auto r = call_(std::move(fields));
  if (!r) return r.error();
  if (!reply_ok(*r)) {
    const auto code = code_from_name(reply_str(*r, field::kCode));
    return Error{code.value_or(Code::Internal), reply_str(*r, field::kMessage)};
  }
  std::string text = started_ ? std::string() : export_header(format_);
  started_ = true;
  if (const Value* items = r->find(field::kItems); items && items->is_array())
    for (const Value& item : items->as_array()) {
      text += export_row(format_, item);
      ++rows_;
    }
  cursor_ = reply_str(*r, field::kCursor);
  done_ = cursor_.empty();
  return std::optional<std::string>(std::move(text));
}

}  // namespace primary
