#include "transport/codec.hpp"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <string>
#include <utility>

#include "collective.capnp.h"
#include "control.capnp.h"
#include "graph.capnp.h"
#include "ps.capnp.h"
#include "tensor.capnp.h"

namespace luoshu::transport {

namespace {

namespace w = luoshu::transport::wire;

// Cap'n Proto's own ceilings: a Data blob or a list holds at most 2^29 - 1
// elements, a segment at most 2^29 - 1 words.
constexpr size_t max_blob_bytes = (size_t{1} << 29) - 1;
constexpr size_t max_segment_words = (size_t{1} << 29) - 1;
// Message nesting: Graph > Node > OpAttrs > Tensor is the deepest (4).
constexpr int nesting_limit = 16;
constexpr int initializer_kind_count = 9;
static_assert(static_cast<int>(initializer::kind_t::he_normal) + 1 == initializer_kind_count,
              "initializer kinds changed: update the wire check and graph.capnp");
static_assert(dtype_count == 7, "dtypes changed: update tensor.capnp's comment");

// --- errors -------------------------------------------------------------------
//
// Inside a decoder a violation throws luoshu_error with the detail; the
// decode_* boundary turns it (and any kj::Exception from Cap'n Proto's own
// checks) into an error value.

[[noreturn]] void fail(const std::string& detail) { throw luoshu_error(detail); }

/// Bytes from the wire made safe to print: anything but printable ASCII as
/// \xNN, cut after `limit` bytes.
std::string printable(std::string_view s, size_t limit) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size() && i < limit; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > limit) out += "...";
  return out;
}

/// A name from the wire, quoted for a message.
std::string quoted(std::string_view s) {
  std::string out = "'"; // not "'" + ...: GCC 12 warns falsely (-Wrestrict) on that
  out += printable(s, 64);
  return out += "'";
}

// --- encoding -------------------------------------------------------------------

capnp::Text::Reader text(const std::string& s) { return {s.c_str(), s.size()}; }

/// Builds a message with `fill` and writes it straight into the returned
/// bytes: one copy from the builder's segments, no intermediate flat array.
template <class Root, class Fill>
wire_bytes serialize(size_t first_segment_words, Fill&& fill) {
  try {
    // A first segment that fits the whole message keeps it in one piece.
    capnp::MallocMessageBuilder mb(static_cast<uint>(std::min(first_segment_words, max_segment_words)));
    fill(mb.initRoot<Root>());
    auto segments = mb.getSegmentsForOutput();
    // TODO(perf): the vector zero-fills its bytes before they are overwritten.
    wire_bytes out(capnp::computeSerializedSizeInWords(segments) * sizeof(capnp::word));
    kj::ArrayOutputStream os(kj::arrayPtr(reinterpret_cast<kj::byte*>(out.data()), out.size()));
    capnp::writeMessage(os, segments);
    return out;
  } catch (const kj::Exception& e) {
    throw luoshu_error(std::string("transport: cannot encode: ") + e.getDescription().cStr());
  }
}

size_t text_words(const std::string& s) { return s.size() / 8 + 2; }

void put_tensor(w::Tensor::Builder b, const tensor& t) {
  if (t.device().kind != device::kind_t::cpu)
    throw luoshu_error("transport: cannot encode a tensor on " + t.device().to_string() +
                       ": copy it to host memory first");
  const size_t n = t.nbytes();
  if (n > max_blob_bytes)
    throw luoshu_error("transport: tensor of " + std::to_string(n) +
                       " bytes exceeds the message limit of " + std::to_string(max_blob_bytes) +
                       " bytes; send it over the bulk tensor lane");
  b.setDtype(static_cast<uint8_t>(t.type()));
  const auto& dims = t.shape().dims();
  auto s = b.initShape(static_cast<uint>(dims.size()));
  for (size_t i = 0; i < dims.size(); ++i) s.set(static_cast<uint>(i), dims[i]);
  auto d = b.initData(static_cast<uint>(n));
  if (n != 0) std::memcpy(d.begin(), t.raw(), n);
}

size_t tensor_words(const tensor& t) {
  return t.defined() ? 8 + static_cast<size_t>(t.rank()) + (t.nbytes() + 7) / 8 : 0;
}

void put_member(w::MemberInfo::Builder b, const member_info& m) {
  b.setRank(m.rank);
  b.setName(text(m.name));
  b.setHost(text(m.host));
  b.setPid(m.pid);
  b.setRole(static_cast<w::Role>(static_cast<uint16_t>(m.role)));
  b.setDevice(text(m.device));
}

void put_dims(capnp::List<int64_t>::Builder b, const std::vector<int64_t>& v) {
  for (size_t i = 0; i < v.size(); ++i) b.set(static_cast<uint>(i), v[i]);
}

// --- decoding -------------------------------------------------------------------

std::string get_text(capnp::Text::Reader t, size_t limit, const char* what) {
  if (t.size() > limit)
    fail(std::string(what) + " is " + std::to_string(t.size()) + " bytes (limit " +
         std::to_string(limit) + ")");
  return std::string(t.begin(), t.size());
}

std::vector<int64_t> to_vector(capnp::List<int64_t>::Reader l) {
  std::vector<int64_t> v(l.size());
  for (uint i = 0; i < l.size(); ++i) v[i] = l[i];
  return v;
}

dtype get_dtype(uint8_t code, const char* what) {
  if (code >= dtype_count)
    fail(std::string(what) + " has unknown dtype code " + std::to_string(code));
  return static_cast<dtype>(code);
}

int32_t get_rank(int32_t r, const char* what) {
  if (r < -1) fail(std::string(what) + " " + std::to_string(r) + " is below -1");
  return r;
}

int32_t get_nonnegative(int32_t v, const char* what) {
  if (v < 0) fail(std::string(what) + " " + std::to_string(v) + " is negative");
  return v;
}

tensor get_tensor(w::Tensor::Reader r, const std::string& what) {
  const dtype t = get_dtype(r.getDtype(), what.c_str());
  auto dims = r.getShape();
  if (dims.size() > static_cast<uint>(max_rank))
    fail(what + " has rank " + std::to_string(dims.size()) + " (limit " + std::to_string(max_rank) + ")");
  std::vector<int64_t> v = to_vector(dims);
  // Every partial product of the dims must fit an int64 (kernels compute
  // strides from them), so zeros count as ones here; numel is the true product.
  int64_t bound = 1;
  uint64_t numel = 1;
  for (auto d : v) {
    if (d < 0) fail(what + " has negative dim " + std::to_string(d));
    if (__builtin_mul_overflow(bound, std::max<int64_t>(d, 1), &bound))
      fail(what + " shape " + shape(v).to_string() + " overflows");
    numel *= static_cast<uint64_t>(d);
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, uint64_t{size_of(t)}, &nbytes))
    fail(what + " shape " + shape(v).to_string() + " overflows");
  auto data = r.getData();
  if (nbytes != data.size())
    fail(what + " " + name(t) + shape(v).to_string() + " needs " + std::to_string(nbytes) +
         " bytes of data, got " + std::to_string(data.size()));
  tensor out(t, shape(std::move(v)));
  if (nbytes != 0) std::memcpy(out.raw(), data.begin(), data.size());
  return out;
}

member_info get_member(w::MemberInfo::Reader r) {
  member_info m;
  m.rank = get_rank(r.getRank(), "member rank");
  m.name = get_text(r.getName(), max_name_bytes, "member name");
  m.host = get_text(r.getHost(), max_name_bytes, "member host");
  m.pid = get_nonnegative(r.getPid(), "member pid");
  auto role = static_cast<uint16_t>(r.getRole());
  if (role > static_cast<uint16_t>(node_role::worker))
    fail("member role " + std::to_string(role) + " is unknown");
  m.role = static_cast<node_role>(role);
  m.device = get_text(r.getDevice(), max_name_bytes, "member device");
  return m;
}

/// A shape inside a graph: dims may be unknown (-1); every dim and the
/// product of the known dims are bounded so inference cannot overflow.
shape get_graph_shape(capnp::List<int64_t>::Reader dims, const std::string& what) {
  if (dims.size() > static_cast<uint>(max_rank))
    fail(what + " has rank " + std::to_string(dims.size()) + " (limit " + std::to_string(max_rank) + ")");
  std::vector<int64_t> v = to_vector(dims);
  int64_t product = 1;
  for (auto d : v) {
    if (d < shape::unknown || d > max_graph_dim)
      fail(what + " has dim " + std::to_string(d) + " (allowed: -1 for unknown, 0.." +
           std::to_string(max_graph_dim) + ")");
    if (__builtin_mul_overflow(product, std::max<int64_t>(d, 1), &product) || product > max_graph_numel)
      fail(what + " has more than " + std::to_string(max_graph_numel) + " elements");
  }
  return shape(std::move(v));
}

std::vector<int64_t> get_axes(capnp::List<int64_t>::Reader l, const std::string& what) {
  if (l.size() > max_axes)
    fail(what + " has " + std::to_string(l.size()) + " entries (limit " + std::to_string(max_axes) + ")");
  return to_vector(l);
}

op_attrs get_attrs(w::OpAttrs::Reader r, const std::string& where) {
  op_attrs a;
  a.axes = get_axes(r.getAxes(), where + " attribute axes");
  a.axes2 = get_axes(r.getAxes2(), where + " attribute axes2");
  a.target = get_graph_shape(r.getTarget(), where + " attribute target");
  a.alpha = r.getAlpha();
  a.beta = r.getBeta();
  a.eps = r.getEps();
  a.decay = r.getDecay();
  a.axis = r.getAxis();
  a.keepdims = r.getKeepdims();
  a.trans_a = r.getTransA();
  a.trans_b = r.getTransB();
  a.flag = r.getFlag();
  a.seed = r.getSeed();
  a.to = get_dtype(r.getTo(), (where + " attribute to").c_str());
  auto init = r.getInit();
  if (init.getKind() >= initializer_kind_count)
    fail(where + " has unknown initializer kind " + std::to_string(init.getKind()));
  a.init.kind = static_cast<initializer::kind_t>(init.getKind());
  a.init.a = init.getA();
  a.init.b = init.getB();
  if (r.hasValue()) a.value = get_tensor(r.getValue(), where + " constant value");
  return a;
}

/// Checks what graph::add's shape inference does not check itself (ops/ is
/// written for graphs built in-process, not for hostile input): the
/// invariants graph::variable and graph::constant enforce, pad's amounts
/// (inference adds them to dims), and slice_grad's ranks (inference indexes
/// the slice's dims by the gradient's rank). Also that a stateful op (an
/// optimizer update) updates a variable, not a constant or a fed input,
/// and batch_norm_stats a non-trainable one.
void check_node(const graph& g, op_kind k, const std::vector<node_id>& inputs, const op_attrs& a,
                const std::string& where) {
  if ((info(k).flags & op_flag_stateful) && !inputs.empty() && g.at(inputs[0]).op != op_kind::variable)
    fail(where + ": updates node " + std::to_string(inputs[0]) + ", which is not a variable");
  // batch_norm_stats updates its running statistics in place while training.
  if (k == op_kind::batch_norm_stats && inputs.size() == 3)
    for (size_t i : {size_t{1}, size_t{2}}) {
      const node& v = g.at(inputs[i]);
      if (v.op != op_kind::variable || v.attrs.flag)
        fail(where + ": updates node " + std::to_string(inputs[i]) + " (its running " + (i == 1 ? "mean" : "variance") +
             "), which is not a non-trainable variable");
    }
  switch (k) {
    case op_kind::variable:
      if (!a.target.known())
        fail(where + ": a variable needs a fully known shape, got " + a.target.to_string());
      break;
    case op_kind::constant:
      if (!a.value.defined()) fail(where + ": a constant without a value");
      if (a.value.type() != a.to || !(a.value.shape() == a.target))
        fail(where + ": constant value " + name(a.value.type()) + a.value.shape().to_string() +
             " does not match its declared " + name(a.to) + a.target.to_string());
      break;
    case op_kind::pad:
      for (const auto* v : {&a.axes, &a.axes2})
        for (auto x : *v)
          if (x > max_graph_dim) fail(where + ": pad amount " + std::to_string(x) + " is too large");
      break;
    case op_kind::slice_grad:
      if (inputs.size() == 2 && g.at(inputs[0]).shape.rank() != g.at(inputs[1]).shape.rank())
        fail(where + ": the gradient's rank " + std::to_string(g.at(inputs[0]).shape.rank()) +
             " differs from the sliced input's " + std::to_string(g.at(inputs[1]).shape.rank()));
      break;
    default:
      break;
  }
}

std::unique_ptr<graph> get_graph(w::Graph::Reader r) {
  auto g = std::make_unique<graph>();
  auto nodes = r.getNodes();
  for (uint i = 0; i < nodes.size(); ++i) {
    auto nr = nodes[i];
    const std::string where = "node " + std::to_string(i);
    const std::string op_name = get_text(nr.getOp(), max_name_bytes, (where + " op").c_str());
    op_kind k;
    if (!find_op(op_name, k)) fail(where + ": unknown op " + quoted(op_name));
    const std::string node_name = get_text(nr.getName(), max_name_bytes, (where + " name").c_str());
    if (node_name.empty()) fail(where + " (" + op_name + ") has no name");
    const std::string what = where + " ('" + node_name + "', " + op_name + ")";

    auto in = nr.getInputs();
    if (in.size() > max_node_inputs)
      fail(what + " has " + std::to_string(in.size()) + " inputs (limit " +
           std::to_string(max_node_inputs) + ")");
    std::vector<node_id> inputs;
    inputs.reserve(in.size());
    for (auto x : in) {
      if (x < 0 || static_cast<uint>(x) >= i)
        fail(what + ": input " + std::to_string(x) + " is not an earlier node");
      inputs.push_back(x);
    }
    const dtype declared_type = get_dtype(nr.getDtype(), what.c_str());
    const shape declared_shape = get_graph_shape(nr.getShape(), what + " shape");
    op_attrs attrs = get_attrs(nr.getAttrs(), what);
    check_node(*g, k, inputs, attrs, what);

    node_id id;
    try {
      id = g->add(k, std::move(inputs), std::move(attrs), node_name).id();
    } catch (const luoshu_error& e) {
      fail(where + ": " + e.what());
    }
    const node& n = g->at(id);
    if (n.type != declared_type || !(n.shape == declared_shape))
      fail(what + " is declared " + name(declared_type) + declared_shape.to_string() +
           " but infers to " + name(n.type) + n.shape.to_string());
  }
  return g;
}

/// Reads one message of type Root from untrusted bytes and hands its root to
/// `read`; any failure becomes "transport: malformed <what>: <detail>".
template <class Root, class Read>
auto decode(std::span<const char> bytes, const char* what, Read&& read)
    -> result<decltype(read(std::declval<typename Root::Reader>()))> {
  // Details quote hostile bytes (names, Cap'n Proto's own messages): escape them.
  const std::string prefix = std::string("transport: malformed ") + what + ": ";
  auto failed = [&](std::string_view detail) { return error{prefix + printable(detail, 1024)}; };
  try {
    if (bytes.empty()) return error{prefix + "empty input"};
    if (bytes.size() % sizeof(capnp::word) != 0)
      return error{prefix + "size " + std::to_string(bytes.size()) + " is not a multiple of 8"};
    if (bytes.size() > max_wire_bytes)
      return error{prefix + "size " + std::to_string(bytes.size()) + " exceeds the limit of " +
                   std::to_string(max_wire_bytes) + " bytes"};
    // Spans may be unaligned: copy into words.
    auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), bytes.data(), bytes.size());
    capnp::ReaderOptions opts;
    // Each byte of a well-formed message is read about once; the slack
    // covers pointers shared by a hostile message (amplification).
    opts.traversalLimitInWords = 4 * words.size() + 1024;
    opts.nestingLimit = nesting_limit;
    capnp::FlatArrayMessageReader reader(words.asPtr(), opts);
    if (reader.getEnd() != words.end())
      return error{prefix + std::to_string((words.end() - reader.getEnd()) * sizeof(capnp::word)) +
                   " bytes after the end of the message"};
    return read(reader.getRoot<Root>());
  } catch (const kj::Exception& e) {
    return failed(e.getDescription().cStr());
  } catch (const luoshu_error& e) {
    return failed(e.what());
  } catch (const std::exception& e) {
    return failed(e.what());
  }
}

} // namespace

// --- control messages ------------------------------------------------------------

wire_bytes encode(const join_request& m) {
  size_t words = 16 + text_words(m.token) + text_words(m.self.name) + text_words(m.self.host) +
                 text_words(m.self.device);
  return serialize<w::JoinRequest>(words, [&](w::JoinRequest::Builder b) {
    b.setToken(text(m.token));
    put_member(b.initSelf(), m.self);
    b.setWorldSize(m.world_size);
  });
}

result<join_request> decode_join_request(std::span<const char> bytes) {
  return decode<w::JoinRequest>(bytes, "join request", [](w::JoinRequest::Reader r) {
    join_request m;
    m.token = get_text(r.getToken(), max_name_bytes, "token");
    m.self = get_member(r.getSelf());
    m.world_size = get_nonnegative(r.getWorldSize(), "world size");
    return m;
  });
}

wire_bytes encode(const join_reply& m) {
  return serialize<w::JoinReply>(8 + text_words(m.reason), [&](w::JoinReply::Builder b) {
    b.setAccepted(m.accepted);
    b.setReason(text(m.reason));
    b.setRank(m.rank);
    b.setWorldSize(m.world_size);
    b.setHeartbeatMs(m.heartbeat_ms);
  });
}

result<join_reply> decode_join_reply(std::span<const char> bytes) {
  return decode<w::JoinReply>(bytes, "join reply", [](w::JoinReply::Reader r) {
    join_reply m;
    m.accepted = r.getAccepted();
    m.reason = get_text(r.getReason(), max_reason_bytes, "reason");
    m.rank = get_rank(r.getRank(), "rank");
    m.world_size = get_nonnegative(r.getWorldSize(), "world size");
    if (r.getHeartbeatMs() < 0)
      fail("heartbeat interval " + std::to_string(r.getHeartbeatMs()) + " ms is negative");
    m.heartbeat_ms = r.getHeartbeatMs();
    return m;
  });
}

wire_bytes encode(const barrier_request& m) {
  return serialize<w::BarrierRequest>(6 + text_words(m.name), [&](w::BarrierRequest::Builder b) {
    b.setName(text(m.name));
    b.setRank(m.rank);
  });
}

result<barrier_request> decode_barrier_request(std::span<const char> bytes) {
  return decode<w::BarrierRequest>(bytes, "barrier request", [](w::BarrierRequest::Reader r) {
    barrier_request m;
    m.name = get_text(r.getName(), max_name_bytes, "barrier name");
    m.rank = get_rank(r.getRank(), "rank");
    return m;
  });
}

// --- tensors -------------------------------------------------------------------

wire_bytes encode(const tensor_message& m) {
  size_t words = 8 + text_words(m.name) + tensor_words(m.value);
  return serialize<w::TensorMessage>(words, [&](w::TensorMessage::Builder b) {
    b.setName(text(m.name));
    b.setStep(m.step);
    if (m.value.defined()) put_tensor(b.initTensor(), m.value);
  });
}

result<tensor_message> decode_tensor_message(std::span<const char> bytes) {
  return decode<w::TensorMessage>(bytes, "tensor message", [](w::TensorMessage::Reader r) {
    tensor_message m;
    m.name = get_text(r.getName(), max_name_bytes, "tensor name");
    m.step = r.getStep();
    if (r.hasTensor()) m.value = get_tensor(r.getTensor(), "tensor");
    return m;
  });
}

// --- parameter server ------------------------------------------------------------

namespace {

size_t list_words(size_t n) { return (n * 8 + 7) / 8 + 1; }

void put_spec(w::PsTableSpec::Builder b, const ps_table_spec& t) {
  b.setId(t.id);
  b.setName(text(t.name));
  b.setSparse(t.sparse);
  b.setRows(t.rows);
  b.setWidth(t.width);
  b.setDtype(static_cast<uint8_t>(t.type));
  b.setHashPartition(t.hash_partition);
  b.setInitKind(static_cast<uint8_t>(t.init.kind));
  b.setInitA(t.init.a);
  b.setInitB(t.init.b);
  b.setSeed(t.seed);
  auto o = b.initOptimizer();
  o.setRule(static_cast<uint8_t>(t.optimizer.rule));
  o.setLr(t.optimizer.lr);
  o.setMomentum(t.optimizer.momentum);
  o.setBeta2(t.optimizer.beta2);
  o.setEps(t.optimizer.eps);
  o.setWeightDecay(t.optimizer.weight_decay);
  o.setL1(t.optimizer.l1);
}

ps_table_spec get_spec(w::PsTableSpec::Reader r) {
  ps_table_spec t;
  t.id = r.getId();
  t.name = get_text(r.getName(), max_name_bytes, "table name");
  t.sparse = r.getSparse();
  t.rows = r.getRows();
  t.width = r.getWidth();
  if (t.width == 0) fail("table " + quoted(t.name) + " has width 0");
  if (!t.sparse && t.rows == 0) fail("dense table " + quoted(t.name) + " has no rows");
  t.type = get_dtype(r.getDtype(), "table dtype");
  if (t.type != dtype::f32 && t.type != dtype::f64)
    fail("table " + quoted(t.name) + " has dtype " + name(t.type) + " (f32 or f64 only)");
  t.hash_partition = r.getHashPartition();
  if (r.getInitKind() > static_cast<uint8_t>(initializer::kind_t::he_normal))
    fail("table " + quoted(t.name) + " has unknown initializer kind " + std::to_string(r.getInitKind()));
  t.init.kind = static_cast<initializer::kind_t>(r.getInitKind());
  t.init.a = r.getInitA();
  t.init.b = r.getInitB();
  t.seed = r.getSeed();
  auto o = r.getOptimizer();
  if (o.getRule() > static_cast<uint8_t>(ps_optimizer::rule_t::ftrl))
    fail("table " + quoted(t.name) + " has unknown optimizer rule " + std::to_string(o.getRule()));
  t.optimizer.rule = static_cast<ps_optimizer::rule_t>(o.getRule());
  t.optimizer.lr = o.getLr();
  t.optimizer.momentum = o.getMomentum();
  t.optimizer.beta2 = o.getBeta2();
  t.optimizer.eps = o.getEps();
  t.optimizer.weight_decay = o.getWeightDecay();
  t.optimizer.l1 = o.getL1();
  return t;
}

} // namespace

wire_bytes encode(const ps_request& m) {
  size_t words = 64 + list_words(m.keys.size()) + tensor_words(m.values) + text_words(m.spec.name) +
                 text_words(m.func) + list_words(m.args.size()) + text_words(m.path);
  return serialize<w::PsRequest>(words, [&](w::PsRequest::Builder b) {
    b.setSeq(m.seq);
    b.setWorker(m.worker);
    b.setClock(m.clock);
    b.setOp(static_cast<uint8_t>(m.op));
    b.setTable(m.table);
    auto k = b.initKeys(static_cast<uint>(m.keys.size()));
    for (size_t i = 0; i < m.keys.size(); ++i) k.set(static_cast<uint>(i), m.keys[i]);
    if (m.values.defined()) put_tensor(b.initValues(), m.values);
    if (m.op == ps_op::create) put_spec(b.initSpec(), m.spec);
    b.setFunc(text(m.func));
    auto a = b.initArgs(static_cast<uint>(m.args.size()));
    for (size_t i = 0; i < m.args.size(); ++i) a.set(static_cast<uint>(i), m.args[i]);
    b.setPath(text(m.path));
  });
}

result<ps_request> decode_ps_request(std::span<const char> bytes) {
  return decode<w::PsRequest>(bytes, "ps request", [](w::PsRequest::Reader r) {
    ps_request m;
    m.seq = r.getSeq();
    m.worker = get_nonnegative(r.getWorker(), "worker");
    m.clock = r.getClock();
    if (r.getOp() > static_cast<uint8_t>(ps_op::assign)) fail("unknown ps op " + std::to_string(r.getOp()));
    m.op = static_cast<ps_op>(r.getOp());
    m.table = r.getTable();
    auto k = r.getKeys();
    if (k.size() > max_ps_keys)
      fail(std::to_string(k.size()) + " keys (limit " + std::to_string(max_ps_keys) + ")");
    m.keys.resize(k.size());
    for (uint i = 0; i < k.size(); ++i) m.keys[i] = k[i];
    if (r.hasValues()) {
      m.values = get_tensor(r.getValues(), "pushed values");
      if (m.values.rank() != 2 || m.values.dim(0) != static_cast<int64_t>(m.keys.size()) ||
          (m.values.type() != dtype::f32 && m.values.type() != dtype::f64))
        fail("pushed values are " + std::string(name(m.values.type())) + m.values.shape().to_string() + " for " +
             std::to_string(m.keys.size()) + " keys (want f32/f64 [keys, width])");
    }
    if ((m.op == ps_op::push || m.op == ps_op::push_pull || m.op == ps_op::assign) && !m.values.defined())
      fail(std::string(name(m.op)) + " without values");
    if (m.op == ps_op::create) {
      if (!r.hasSpec()) fail("create without a table spec");
      m.spec = get_spec(r.getSpec());
    }
    m.func = get_text(r.getFunc(), max_name_bytes, "function name");
    auto a = r.getArgs();
    if (a.size() > max_ps_args) fail(std::to_string(a.size()) + " function arguments (limit " +
                                     std::to_string(max_ps_args) + ")");
    for (uint i = 0; i < a.size(); ++i) m.args.push_back(a[i]);
    m.path = get_text(r.getPath(), max_name_bytes, "checkpoint path");
    return m;
  });
}

wire_bytes encode(const ps_reply& m) {
  size_t words = 16 + text_words(m.error) + tensor_words(m.values) + list_words(m.partial.size());
  return serialize<w::PsReply>(words, [&](w::PsReply::Builder b) {
    b.setSeq(m.seq);
    b.setError(text(m.error));
    if (m.values.defined()) put_tensor(b.initValues(), m.values);
    auto p = b.initPartial(static_cast<uint>(m.partial.size()));
    for (size_t i = 0; i < m.partial.size(); ++i) p.set(static_cast<uint>(i), m.partial[i]);
    b.setStaleness(m.staleness);
  });
}

result<ps_reply> decode_ps_reply(std::span<const char> bytes) {
  return decode<w::PsReply>(bytes, "ps reply", [](w::PsReply::Reader r) {
    ps_reply m;
    m.seq = r.getSeq();
    m.error = get_text(r.getError(), max_reason_bytes, "ps error");
    if (r.hasValues()) m.values = get_tensor(r.getValues(), "pulled values");
    auto p = r.getPartial();
    if (p.size() > max_ps_args) fail(std::to_string(p.size()) + " partial results (limit " +
                                     std::to_string(max_ps_args) + ")");
    for (uint i = 0; i < p.size(); ++i) m.partial.push_back(p[i]);
    m.staleness = r.getStaleness();
    return m;
  });
}

// --- graphs --------------------------------------------------------------------

wire_bytes encode_graph(const graph& g) {
  size_t words = 8;
  for (size_t i = 0; i < g.size(); ++i) {
    const node& n = g.at(static_cast<node_id>(i));
    words += 48 + text_words(n.name) + n.inputs.size() / 2 + static_cast<size_t>(n.shape.rank()) +
             n.attrs.axes.size() + n.attrs.axes2.size() + static_cast<size_t>(n.attrs.target.rank()) +
             tensor_words(n.attrs.value);
  }
  return serialize<w::Graph>(words, [&](w::Graph::Builder b) {
    auto nodes = b.initNodes(static_cast<uint>(g.size()));
    for (size_t i = 0; i < g.size(); ++i) {
      const node& n = g.at(static_cast<node_id>(i));
      auto nb = nodes[static_cast<uint>(i)];
      nb.setOp(name(n.op));
      nb.setName(text(n.name));
      auto in = nb.initInputs(static_cast<uint>(n.inputs.size()));
      for (size_t j = 0; j < n.inputs.size(); ++j) in.set(static_cast<uint>(j), n.inputs[j]);
      nb.setDtype(static_cast<uint8_t>(n.type));
      put_dims(nb.initShape(static_cast<uint>(n.shape.rank())), n.shape.dims());

      const op_attrs& a = n.attrs;
      auto ab = nb.initAttrs();
      put_dims(ab.initAxes(static_cast<uint>(a.axes.size())), a.axes);
      put_dims(ab.initAxes2(static_cast<uint>(a.axes2.size())), a.axes2);
      put_dims(ab.initTarget(static_cast<uint>(a.target.rank())), a.target.dims());
      ab.setAlpha(a.alpha);
      ab.setBeta(a.beta);
      ab.setEps(a.eps);
      ab.setDecay(a.decay);
      ab.setAxis(a.axis);
      ab.setKeepdims(a.keepdims);
      ab.setTransA(a.trans_a);
      ab.setTransB(a.trans_b);
      ab.setFlag(a.flag);
      ab.setSeed(a.seed);
      ab.setTo(static_cast<uint8_t>(a.to));
      auto ib = ab.initInit();
      ib.setKind(static_cast<uint8_t>(a.init.kind));
      ib.setA(a.init.a);
      ib.setB(a.init.b);
      if (a.value.defined()) put_tensor(ab.initValue(), a.value);
    }
  });
}

result<std::unique_ptr<graph>> decode_graph(std::span<const char> bytes) {
  return decode<w::Graph>(bytes, "graph", [](w::Graph::Reader r) { return get_graph(r); });
}

// --- collectives --------------------------------------------------------------------

wire_bytes encode(const collective_message& m) {
  using K = collective_message::kind_t;
  const size_t words = 32 + text_words(m.hello.group) + text_words(m.hello.shm_name) + text_words(m.abort.reason);
  return serialize<w::CollectiveMessage>(words, [&](w::CollectiveMessage::Builder b) {
    switch (m.kind) {
      case K::hello: {
        auto h = b.initHello();
        h.setGroup(text(m.hello.group));
        h.setRank(m.hello.rank);
        h.setSize(m.hello.size);
        if (!m.hello.shm_name.empty()) {
          h.setShmName(text(m.hello.shm_name));
          h.setShmNonce(m.hello.shm_nonce);
          h.setShmSlots(m.hello.shm_slots);
          h.setShmSlotBytes(m.hello.shm_slot_bytes);
        }
        break;
      }
      case K::chunk: {
        auto c = b.initChunk();
        const collective_chunk& x = m.chunk;
        c.setOp(x.op);
        c.setKind(static_cast<w::CollectiveKind>(static_cast<uint16_t>(x.kind)));
        c.setDtype(static_cast<uint8_t>(x.type));
        c.setReduce(static_cast<uint8_t>(x.reduce));
        c.setStage(x.stage);
        c.setSegment(x.segment);
        c.setOffset(x.offset);
        c.setCount(x.count);
        c.setTotal(x.total);
        c.setSlot(x.slot);
        break;
      }
      case K::abort: {
        auto a = b.initAbort();
        a.setReason(text(m.abort.reason));
        a.setFailedRank(m.abort.failed_rank);
        break;
      }
    }
  });
}

result<collective_message> decode_collective_message(std::span<const char> bytes) {
  return decode<w::CollectiveMessage>(bytes, "collective message", [](w::CollectiveMessage::Reader r) {
    collective_message m;
    switch (r.which()) {
      case w::CollectiveMessage::HELLO: {
        auto h = r.getHello();
        m.kind = collective_message::kind_t::hello;
        m.hello.group = get_text(h.getGroup(), max_name_bytes, "collective group");
        m.hello.size = h.getSize();
        m.hello.rank = h.getRank();
        if (m.hello.size < 1 || m.hello.rank < 0 || m.hello.rank >= m.hello.size)
          fail("rank " + std::to_string(m.hello.rank) + " of " + std::to_string(m.hello.size));
        // Checked further (name, sizes, contents) by whoever maps the slots.
        m.hello.shm_name = get_text(h.getShmName(), max_name_bytes, "shared-memory name");
        m.hello.shm_nonce = h.getShmNonce();
        m.hello.shm_slots = h.getShmSlots();
        m.hello.shm_slot_bytes = h.getShmSlotBytes();
        break;
      }
      case w::CollectiveMessage::CHUNK: {
        auto c = r.getChunk();
        m.kind = collective_message::kind_t::chunk;
        collective_chunk& x = m.chunk;
        x.op = c.getOp();
        const auto kind = static_cast<uint16_t>(c.getKind());
        if (kind > static_cast<uint16_t>(collective_kind::halving_doubling))
          fail("unknown collective kind " + std::to_string(kind));
        x.kind = static_cast<collective_kind>(kind);
        if (c.getDtype() >= dtype_count) fail("unknown dtype code " + std::to_string(c.getDtype()));
        x.type = static_cast<dtype>(c.getDtype());
        if (c.getReduce() > static_cast<uint8_t>(reduce_op::min))
          fail("unknown reduce op " + std::to_string(c.getReduce()));
        x.reduce = static_cast<reduce_op>(c.getReduce());
        x.stage = c.getStage();
        x.segment = c.getSegment();
        x.offset = c.getOffset();
        x.count = c.getCount();
        x.total = c.getTotal();
        x.slot = c.getSlot();
        if (x.slot < -1) fail("shared-memory slot " + std::to_string(x.slot));
        uint64_t end = 0, bytes = 0;
        if (__builtin_add_overflow(x.offset, x.count, &end) || end > x.total)
          fail("chunk [" + std::to_string(x.offset) + ", +" + std::to_string(x.count) + ") outside a buffer of " +
               std::to_string(x.total) + " elements");
        if (__builtin_mul_overflow(x.total, uint64_t{size_of(x.type)}, &bytes) || bytes > max_collective_bytes)
          fail("a buffer of " + std::to_string(x.total) + " " + name(x.type) + " elements exceeds the limit of " +
               std::to_string(max_collective_bytes) + " bytes");
        break;
      }
      case w::CollectiveMessage::ABORT: {
        auto a = r.getAbort();
        m.kind = collective_message::kind_t::abort;
        m.abort.reason = get_text(a.getReason(), max_reason_bytes, "abort reason");
        m.abort.failed_rank = a.getFailedRank();
        if (m.abort.failed_rank < -1) fail("failed rank " + std::to_string(m.abort.failed_rank));
        break;
      }
      default:
        fail("unknown collective message type " + std::to_string(static_cast<int>(r.which())));
    }
    return m;
  });
}

} // namespace luoshu::transport
