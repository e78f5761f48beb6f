// A request body as every service's worker sees it: decode_request against
// the catalog (validation, upper-casing names), the reply encoders, and the
// broker's peer metadata frame, and the batch frames between the broker and
// its workers (common/mdp.hpp).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec.hpp"
#include "common/mdp.hpp"
#include "common/schema.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace primary;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  static constexpr std::string_view kServices[] = {
      "license", "license.control", "update", "update.control", "admin", "broker.control", "echo"};
  CodecLimits limits;
  for (auto service : kServices) {
    Value rid;
    auto req = decode_request(service, bytes, limits, &rid);
    if (!req) {
      const Code code = req.error().code;
      if ((code != Code::BadRequest && code != Code::UnknownOp) || req.error().message.empty())
        std::abort();
      const std::string body = encode_error(code, req.error().message, rid);
      if (!unpack_map(body, limits)) std::abort();
      continue;
    }
    // What a handler reads, and an echo of the request as a reply.
    for (const auto& f : req->spec->request) {
      (void)req->str(f.name);
      (void)req->integer(f.name);
      (void)req->flag(f.name);
      if (f.type == FieldType::Name && req->get(f.name) &&
          !valid_computer_name(req->str(f.name)))
        std::abort();
    }
    (void)encode_reply(Reply::success(req->body.as_map()), req->rid);
  }
  const Peer peer = decode_peer(bytes);
  (void)is_loopback(peer.address);
  (void)encode_peer(peer);
  // A batch frame that parses re-encodes to the same bytes.
  std::vector<mdp::BatchEntry> entries;
  for (const bool with_meta : {true, false}) {
    if (!mdp::parse_batch(bytes, with_meta, entries)) continue;
    std::string again;
    for (const auto& e : entries) mdp::append_entry(again, e, with_meta);
    if (again != bytes) std::abort();
  }
  return 0;
}
