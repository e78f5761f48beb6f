#include "common/client.hpp"

#include <cstdlib>
#include <string_view>

#include "common/codec.hpp"
#include "common/mdp.hpp"
#include "common/schema.hpp"

namespace primary {

MdpClient::MdpClient(zmq::context_t& ctx, ClientOptions options)
    : ctx_(ctx), options_(std::move(options)) {
  if (options_.endpoints.empty()) options_.endpoints.push_back("tcp://127.0.0.1:16770");
  connect();
}

MdpClient::~MdpClient() = default;

void MdpClient::connect() {
  socket_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
  socket_->set(zmq::sockopt::linger, 0);
  if (!options_.server_key.empty()) {
    if (options_.public_key.empty()) {
      char pub[41], sec[41];
      zmq_curve_keypair(pub, sec);
      options_.public_key = pub;
      options_.secret_key = sec;
    }
    socket_->set(zmq::sockopt::curve_serverkey, options_.server_key);
    socket_->set(zmq::sockopt::curve_publickey, options_.public_key);
    socket_->set(zmq::sockopt::curve_secretkey, options_.secret_key);
  }
  socket_->connect(options_.endpoints[current_]);
}

Result<std::string> MdpClient::request(const std::string& service, const std::string& body) {
  for (int attempt = 0; attempt < std::max(1, options_.attempts); ++attempt) {
    mdp::send_request(*socket_, service, body);
    zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(options_.timeout_ms));
    if (item.revents & ZMQ_POLLIN) {
      mdp::Frames in;
      mdp::recv_frames(*socket_, in);
      if (auto reply = mdp::reply_body(in, service)) return std::string(*reply);
      return Error{Code::BadRequest, "malformed reply from the server"};
    }
    // Lazy Pirate: abandon this socket (and any late reply) and move on.
    current_ = (current_ + 1) % options_.endpoints.size();
    connect();
  }
  return Error{Code::Unavailable, "no reply from " + options_.endpoints[current_] + " within " +
                                      std::to_string(options_.timeout_ms) + " ms"};
}

Result<Value> MdpClient::call(const std::string& service, const std::string& op, Value::Map fields) {
  auto reply = request(service, encode_request(op, std::move(fields)));
  if (!reply) return reply.error();
  auto map = unpack_map(*reply);
  if (map && checking_replies()) {
    const Value* ok = map->find(field::kOk);
    const OpSpec* spec = find_op(service, op);
    if (spec && ok && ok->is_bool() && ok->as_bool())
      if (auto valid = validate_reply(spec->id, *map); !valid)
        return Error{Code::Internal, service + " " + op + " reply breaks its spec: " + valid.error().message};
  }
  return map;
}

bool MdpClient::checking_replies() {
  static const bool on = [] {
    const char* v = std::getenv("PRIMARY_CHECK_REPLIES");
    return v && *v && std::string_view(v) != "0";
  }();
  return on;
}

}  // namespace primary
