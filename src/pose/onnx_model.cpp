// ONNX ModelProto reader (protobuf wire format) and a node-by-node interpreter on ATen (onnx.h).

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <numeric>
#include <sstream>
#include <unordered_map>

#include "ipa/core/error.h"
#include "ipa/pose/onnx.h"

namespace ipa::pose::onnx {
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------------
// Protobuf wire format: varint (0), 64-bit (1), length-delimited (2), 32-bit (5).

struct Reader {
    const uint8_t* p;
    const uint8_t* end;
    const std::string* source;

    [[noreturn]] void fail(const std::string& what) const {
        throw CheckpointError(
            fmt::format("{}: not a valid ONNX model ({}); hint: is it an .onnx file, complete?", *source, what));
    }
    bool done() const { return p >= end; }
    uint64_t varint() {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (p >= end) fail("truncated varint");
            const uint8_t b = *p++;
            v |= uint64_t(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
        }
        fail("overlong varint");
    }
    Reader sub() {
        const uint64_t n = varint();
        if (n > uint64_t(end - p)) fail("length past the end of the data");
        Reader r{p, p + n, source};
        p += n;
        return r;
    }
    std::string bytes() {
        Reader r = sub();
        return std::string(reinterpret_cast<const char*>(r.p), r.end - r.p);
    }
    uint32_t fixed32() {
        if (end - p < 4) fail("truncated fixed32");
        uint32_t v;
        std::memcpy(&v, p, 4);
        p += 4;
        return v;
    }
    uint64_t fixed64() {
        if (end - p < 8) fail("truncated fixed64");
        uint64_t v;
        std::memcpy(&v, p, 8);
        p += 8;
        return v;
    }
    void skip(int wire) {
        switch (wire) {
            case 0:
                varint();
                break;
            case 1:
                fixed64();
                break;
            case 2:
                sub();
                break;
            case 5:
                fixed32();
                break;
            default:
                fail(fmt::format("wire type {}", wire));
        }
    }
    /// Next field: (number, wire type); false at the end.
    bool next(uint32_t& field, int& wire) {
        if (done()) return false;
        const uint64_t key = varint();
        field = static_cast<uint32_t>(key >> 3);
        wire = static_cast<int>(key & 7);
        if (field == 0) fail("field number 0");
        return true;
    }
    /// A repeated varint field, packed (wire 2) or not (wire 0).
    void ints(int wire, std::vector<int64_t>& out) {
        if (wire == 0) {
            out.push_back(static_cast<int64_t>(varint()));
        } else if (wire == 2) {
            Reader r = sub();
            while (!r.done()) out.push_back(static_cast<int64_t>(r.varint()));
        } else {
            fail("bad wire type for an integer list");
        }
    }
    void floats(int wire, std::vector<float>& out) {
        auto one = [](uint32_t u) {
            float f;
            std::memcpy(&f, &u, 4);
            return f;
        };
        if (wire == 5) {
            out.push_back(one(fixed32()));
        } else if (wire == 2) {
            Reader r = sub();
            while (!r.done()) out.push_back(one(r.fixed32()));
        } else {
            fail("bad wire type for a float list");
        }
    }
    void doubles(int wire, std::vector<double>& out) {
        auto one = [](uint64_t u) {
            double d;
            std::memcpy(&d, &u, 8);
            return d;
        };
        if (wire == 1) {
            out.push_back(one(fixed64()));
        } else if (wire == 2) {
            Reader r = sub();
            while (!r.done()) out.push_back(one(r.fixed64()));
        } else {
            fail("bad wire type for a double list");
        }
    }
};

// TensorProto.DataType
enum : int { kFloat = 1, kUint8 = 2, kInt8 = 3, kInt32 = 6, kInt64 = 7, kBool = 9, kDouble = 11 };

at::ScalarType scalar_type(int dt, const std::string& where) {
    switch (dt) {
        case kFloat:
            return at::kFloat;
        case kUint8:
            return at::kByte;
        case kInt8:
            return at::kChar;
        case kInt32:
            return at::kInt;
        case kInt64:
            return at::kLong;
        case kBool:
            return at::kBool;
        case kDouble:
            return at::kDouble;
        default:
            throw CheckpointError(fmt::format("{}: tensor data type {} is not supported", where, dt));
    }
}

at::Tensor parse_tensor(Reader r, const std::string& where_prefix, std::string* name_out = nullptr) {
    std::vector<int64_t> dims, int64_data, int32_data;
    std::vector<float> float_data;
    std::vector<double> double_data;
    std::string raw, name;
    int dt = 0;
    bool external = false;
    uint32_t f;
    int w;
    while (r.next(f, w)) {
        switch (f) {
            case 1:
                r.ints(w, dims);
                break;
            case 2:
                dt = static_cast<int>(r.varint());
                break;
            case 4:
                r.floats(w, float_data);
                break;
            case 5:
                r.ints(w, int32_data);
                break;
            case 7:
                r.ints(w, int64_data);
                break;
            case 8:
                name = r.bytes();
                break;
            case 9:
                raw = r.bytes();
                break;
            case 10:
                r.doubles(w, double_data);
                break;
            case 13:
                r.skip(w), external = true;
                break;  // external_data
            case 14:
                if (r.varint() == 1) external = true;  // data_location EXTERNAL
                break;
            default:
                r.skip(w);
        }
    }
    const std::string where = where_prefix + (name.empty() ? "" : " '" + name + "'");
    if (external)
        throw CheckpointError(
            fmt::format("{}: stored as external data, which ipa does not read; hint: save the "
                        "model with all tensors inside the .onnx file",
                        where));
    const auto st = scalar_type(dt, where);
    const int64_t n = std::accumulate(dims.begin(), dims.end(), int64_t{1}, std::multiplies<>());
    if (n < 0) throw CheckpointError(fmt::format("{}: negative dimension", where));
    at::Tensor t = at::empty(dims, at::TensorOptions().dtype(st));
    const std::size_t nbytes = static_cast<std::size_t>(n) * t.element_size();
    if (!raw.empty() || n == 0) {
        if (raw.size() != nbytes)
            throw CheckpointError(fmt::format("{}: raw data of {} bytes for {} values of {} bytes", where, raw.size(),
                                              n, t.element_size()));
        if (nbytes) std::memcpy(t.data_ptr(), raw.data(), nbytes);
    } else {
        auto check = [&](std::size_t have) {
            if (have != static_cast<std::size_t>(n))
                throw CheckpointError(fmt::format("{}: {} values for shape of {} elements", where, have, n));
        };
        switch (dt) {
            case kFloat:
                check(float_data.size());
                std::memcpy(t.data_ptr(), float_data.data(), nbytes);
                break;
            case kDouble:
                check(double_data.size());
                std::memcpy(t.data_ptr(), double_data.data(), nbytes);
                break;
            case kInt64:
                check(int64_data.size());
                std::memcpy(t.data_ptr(), int64_data.data(), nbytes);
                break;
            default: {  // int32, uint8, int8, bool are stored in int32_data
                check(int32_data.size());
                auto tmp = at::tensor(int32_data, at::kLong).to(st);
                t.copy_(tmp.reshape(dims));
            }
        }
    }
    if (name_out) *name_out = name;
    return t;
}

ValueInfo parse_value_info(Reader r) {
    ValueInfo v;
    uint32_t f;
    int w;
    while (r.next(f, w)) {
        if (f == 1) {
            v.name = r.bytes();
        } else if (f == 2) {  // TypeProto
            Reader tp = r.sub();
            while (tp.next(f, w)) {
                if (f != 1) {  // tensor_type
                    tp.skip(w);
                    continue;
                }
                Reader tt = tp.sub();
                while (tt.next(f, w)) {
                    if (f == 1) {
                        v.elem_type = static_cast<int>(tt.varint());
                    } else if (f == 2) {  // TensorShapeProto
                        Reader sh = tt.sub();
                        while (sh.next(f, w)) {
                            if (f != 1) {
                                sh.skip(w);
                                continue;
                            }
                            Reader d = sh.sub();
                            int64_t value = -1;
                            while (d.next(f, w)) {
                                if (f == 1)
                                    value = static_cast<int64_t>(d.varint());
                                else
                                    d.skip(w);
                            }
                            v.shape.push_back(value);
                        }
                    } else {
                        tt.skip(w);
                    }
                }
            }
        } else {
            r.skip(w);
        }
    }
    return v;
}

Node::Attribute parse_attribute(Reader r, const std::string& where) {
    Node::Attribute a;
    uint32_t f;
    int w;
    std::vector<float> floats;
    while (r.next(f, w)) {
        switch (f) {
            case 1:
                a.name = r.bytes();
                break;
            case 2: {
                std::vector<float> one;
                r.floats(w, one);
                a.f = one.empty() ? 0.0 : one[0];
                break;
            }
            case 3:
                a.i = static_cast<int64_t>(r.varint());
                break;
            case 4:
                a.s = r.bytes();
                break;
            case 5:
                a.t = parse_tensor(r.sub(), where + " attribute tensor");
                break;
            case 7:
                r.floats(w, floats);
                break;
            case 8:
                r.ints(w, a.ints);
                break;
            case 20:
                a.type = static_cast<int>(r.varint());
                break;
            default:
                r.skip(w);
        }
    }
    a.floats.assign(floats.begin(), floats.end());
    return a;
}

Node parse_node(Reader r, const std::string& source) {
    Node n;
    uint32_t f;
    int w;
    std::vector<Reader> attrs;
    while (r.next(f, w)) {
        switch (f) {
            case 1:
                n.inputs.push_back(r.bytes());
                break;
            case 2:
                n.outputs.push_back(r.bytes());
                break;
            case 3:
                n.name = r.bytes();
                break;
            case 4:
                n.op_type = r.bytes();
                break;
            case 5:
                attrs.push_back(r.sub());
                break;
            case 7:
                n.domain = r.bytes();
                break;
            default:
                r.skip(w);
        }
    }
    const std::string where = fmt::format("{}: node '{}' ({})", source, n.name, n.op_type);
    for (auto& a : attrs) n.attributes.push_back(parse_attribute(a, where));
    return n;
}

// ---------------------------------------------------------------------------------------------
// Operators.

using Values = std::unordered_map<std::string, at::Tensor>;

struct Ctx {
    const Node& node;
    const std::string& source;
    std::vector<at::Tensor> in;  // undefined for omitted optional inputs
    int64_t opset;

    [[noreturn]] void fail(const std::string& what) const {
        throw CheckpointError(fmt::format("{}: node '{}' ({}): {}", source, node.name, node.op_type, what));
    }
    const at::Tensor& input(std::size_t i) const {
        if (i >= in.size() || !in[i].defined()) fail(fmt::format("input {} is missing", i));
        return in[i];
    }
    bool has(std::size_t i) const { return i < in.size() && in[i].defined(); }
    int64_t i(const std::string& key, int64_t def) const {
        const auto* a = node.attr(key);
        return a ? a->i : def;
    }
    double f(const std::string& key, double def) const {
        const auto* a = node.attr(key);
        return a ? a->f : def;
    }
    std::string s(const std::string& key, const std::string& def) const {
        const auto* a = node.attr(key);
        return a ? a->s : def;
    }
    std::vector<int64_t> ints(const std::string& key, std::vector<int64_t> def = {}) const {
        const auto* a = node.attr(key);
        return a ? a->ints : def;
    }
    bool has_attr(const std::string& key) const { return node.attr(key) != nullptr; }
};

std::vector<int64_t> to_ints(const at::Tensor& t) {
    auto c = t.to(at::kCPU).to(at::kLong).contiguous();
    return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

int64_t norm_axis(int64_t axis, int64_t rank, const Ctx& c) {
    if (axis < -rank || axis >= rank) c.fail(fmt::format("axis {} out of range for rank {}", axis, rank));
    return axis < 0 ? axis + rank : axis;
}

/// Symmetric padding for ATen, or an explicit pad of the input when ONNX's pads differ per side.
at::Tensor pad_input(const Ctx& c, at::Tensor x, std::vector<int64_t>& pads, std::size_t spatial, double value) {
    if (c.s("auto_pad", "NOTSET") != "NOTSET" && c.s("auto_pad", "NOTSET") != "VALID")
        c.fail("auto_pad " + c.s("auto_pad", "") + " is not supported");
    if (pads.empty()) pads.assign(2 * spatial, 0);
    if (pads.size() != 2 * spatial) c.fail("pads has the wrong length");
    bool symmetric = true;
    for (std::size_t k = 0; k < spatial; ++k) symmetric = symmetric && pads[k] == pads[k + spatial];
    if (symmetric) {
        pads.resize(spatial);
        return x;
    }
    std::vector<int64_t> tp;  // ATen's pad: last dimension first
    for (std::size_t k = spatial; k-- > 0;) tp.push_back(pads[k]), tp.push_back(pads[k + spatial]);
    x = at::constant_pad_nd(x, tp, value);
    pads.assign(spatial, 0);
    return x;
}

at::Tensor op_conv(const Ctx& c) {
    const auto& x0 = c.input(0);
    const auto& w = c.input(1);
    const std::size_t sp = static_cast<std::size_t>(w.dim() - 2);
    if (sp != 1 && sp != 2) c.fail("only 1-d and 2-d convolutions are supported");
    auto pads = c.ints("pads");
    at::Tensor x = pad_input(c, x0, pads, sp, 0.0);
    auto strides = c.ints("strides", std::vector<int64_t>(sp, 1));
    auto dil = c.ints("dilations", std::vector<int64_t>(sp, 1));
    at::Tensor b = c.has(2) ? c.in[2] : at::Tensor();
    return at::convolution(x, w, b, strides, pads, dil, false, std::vector<int64_t>(sp, 0), c.i("group", 1));
}

at::Tensor op_maxpool(const Ctx& c) {
    const auto& x0 = c.input(0);
    auto k = c.ints("kernel_shape");
    if (k.size() != 2) c.fail("only 2-d MaxPool is supported");
    if (c.i("storage_order", 0) != 0) c.fail("storage_order 1 is not supported");
    auto pads = c.ints("pads");
    at::Tensor x = pad_input(c, x0, pads, 2, -std::numeric_limits<double>::infinity());
    return at::max_pool2d(x, k, c.ints("strides", {1, 1}), pads, c.ints("dilations", {1, 1}), c.i("ceil_mode", 0) != 0);
}

at::Tensor op_binary(const Ctx& c) {
    const auto& a = c.input(0);
    const auto& b = c.input(1);
    const auto& op = c.node.op_type;
    if (op == "Add") return a + b;
    if (op == "Sub") return a - b;
    if (op == "Mul") return a * b;
    if (op == "Div") {
        if (!a.is_floating_point() && !b.is_floating_point()) return at::div(a, b, "trunc");
        return a / b;
    }
    if (op == "Pow") {
        if (!b.is_floating_point() || b.numel() != 1) return at::pow(a, b).to(a.scalar_type());
        return at::pow(a, b.to(a.scalar_type()));
    }
    if (op == "Max") return at::maximum(a, b);
    if (op == "Min") return at::minimum(a, b);
    if (op == "Equal") return at::eq(a, b);
    c.fail("internal: not a binary operator");
}

at::Tensor op_clip(const Ctx& c) {
    at::Tensor x = c.input(0);
    if (c.opset < 11) {
        return at::clamp(x, c.f("min", -std::numeric_limits<double>::infinity()),
                         c.f("max", std::numeric_limits<double>::infinity()));
    }
    if (c.has(1)) x = at::maximum(x, c.in[1].to(x.scalar_type()));
    if (c.has(2)) x = at::minimum(x, c.in[2].to(x.scalar_type()));
    return x;
}

at::Tensor op_reshape(const Ctx& c) {
    const auto& x = c.input(0);
    auto shape = to_ints(c.input(1));
    const bool allowzero = c.i("allowzero", 0) != 0;
    for (std::size_t k = 0; k < shape.size(); ++k) {
        if (shape[k] == 0 && !allowzero) {
            if (static_cast<int64_t>(k) >= x.dim()) c.fail("shape 0 refers to a missing input dimension");
            shape[k] = x.size(static_cast<int64_t>(k));
        }
    }
    return x.reshape(shape);
}

at::Tensor op_slice(const Ctx& c) {
    at::Tensor x = c.input(0);
    std::vector<int64_t> starts, ends, axes, steps;
    if (c.opset < 10) {
        starts = c.ints("starts"), ends = c.ints("ends"), axes = c.ints("axes");
    } else {
        starts = to_ints(c.input(1)), ends = to_ints(c.input(2));
        if (c.has(3)) axes = to_ints(c.in[3]);
        if (c.has(4)) steps = to_ints(c.in[4]);
    }
    if (axes.empty()) {
        axes.resize(starts.size());
        std::iota(axes.begin(), axes.end(), 0);
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
        c.fail("starts, ends, axes and steps differ in length");
    for (std::size_t k = 0; k < starts.size(); ++k) {
        const int64_t ax = norm_axis(axes[k], x.dim(), c);
        const int64_t n = x.size(ax);
        if (steps[k] <= 0) c.fail("only positive Slice steps are supported");
        auto clampi = [&](int64_t v) {
            if (v < 0) v += n;
            return std::clamp<int64_t>(v, 0, n);
        };
        const int64_t s = clampi(starts[k]), e = clampi(ends[k]);
        x = x.slice(ax, s, std::max(s, e), steps[k]);
    }
    return x;
}

std::vector<at::Tensor> op_split(const Ctx& c) {
    const auto& x = c.input(0);
    const int64_t ax = norm_axis(c.i("axis", 0), x.dim(), c);
    std::vector<int64_t> split = c.ints("split");
    if (c.has(1)) split = to_ints(c.in[1]);
    const auto n_out = static_cast<int64_t>(c.node.outputs.size());
    if (split.empty()) {
        if (x.size(ax) % n_out) c.fail("the axis does not split evenly");
        split.assign(n_out, x.size(ax) / n_out);
    }
    if (static_cast<int64_t>(split.size()) != n_out) c.fail("split sizes do not match the outputs");
    return at::split_with_sizes(x, split, ax);
}

std::vector<int64_t> axes_of(const Ctx& c, std::size_t input_index) {
    if (c.has(input_index)) return to_ints(c.in[input_index]);
    return c.ints("axes");
}

at::Tensor op_squeeze(const Ctx& c) {
    at::Tensor x = c.input(0);
    auto axes = axes_of(c, 1);
    if (axes.empty()) return x.squeeze();
    for (auto& a : axes) a = norm_axis(a, x.dim(), c);
    std::sort(axes.rbegin(), axes.rend());
    for (const auto a : axes) {
        if (x.size(a) != 1) c.fail(fmt::format("cannot squeeze axis {} of size {}", a, x.size(a)));
        x = x.squeeze(a);
    }
    return x;
}

at::Tensor op_unsqueeze(const Ctx& c) {
    at::Tensor x = c.input(0);
    auto axes = axes_of(c, 1);
    const int64_t out_rank = x.dim() + static_cast<int64_t>(axes.size());
    for (auto& a : axes) a = norm_axis(a, out_rank, c);
    std::sort(axes.begin(), axes.end());
    for (const auto a : axes) x = x.unsqueeze(a);
    return x;
}

at::Tensor op_reduce(const Ctx& c) {
    at::Tensor x = c.input(0);
    auto axes = c.ints("axes");
    if (c.has(1)) axes = to_ints(c.in[1]);
    const bool keep = c.i("keepdims", 1) != 0;
    if (axes.empty()) {
        if (c.i("noop_with_empty_axes", 0)) return x;
        axes.resize(x.dim());
        std::iota(axes.begin(), axes.end(), 0);
    }
    for (auto& a : axes) a = norm_axis(a, x.dim(), c);
    const auto& op = c.node.op_type;
    if (op == "ReduceSum") return x.sum(axes, keep);
    if (op == "ReduceMean") return x.mean(axes, keep);
    if (op == "ReduceL2") return (x * x).sum(axes, keep).sqrt();
    if (op == "ReduceMax") {
        for (auto it = axes.rbegin(); it != axes.rend(); ++it) x = std::get<0>(x.max(*it, true));
        if (!keep) {
            std::sort(axes.rbegin(), axes.rend());
            for (const auto a : axes) x = x.squeeze(a);
        }
        return x;
    }
    c.fail("internal: not a reduction");
}

at::Tensor op_resize(const Ctx& c) {
    const auto& x = c.input(0);
    const std::string mode = c.s("mode", "nearest");
    if (mode != "nearest") c.fail("Resize mode '" + mode + "' is not supported (nearest only)");
    const std::string ctm = c.s("coordinate_transformation_mode", c.opset >= 11 ? "half_pixel" : "asymmetric");
    const std::string nm = c.s("nearest_mode", "round_prefer_floor");
    if (x.dim() != 4) c.fail("only 4-d Resize is supported");
    std::vector<double> scales;
    std::vector<int64_t> sizes;
    const std::size_t si = c.opset >= 11 ? 2 : 1;
    if (c.has(si) && c.in[si].numel() > 0) {
        auto t = c.in[si].to(at::kCPU).to(at::kDouble).contiguous();
        scales.assign(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
    }
    if (c.opset >= 11 && c.has(3) && c.in[3].numel() > 0) sizes = to_ints(c.in[3]);
    if (sizes.empty()) {
        if (scales.size() != 4) c.fail("Resize needs 4 scales or 4 sizes");
        if (scales[0] != 1 || scales[1] != 1) c.fail("Resize of the batch or channel axis is not supported");
        for (int k = 0; k < 4; ++k) sizes.push_back(static_cast<int64_t>(std::floor(x.size(k) * scales[k])));
    }
    // ATen's nearest picks src = floor(dst * in / out): ONNX's asymmetric + floor, which is what
    // torch.onnx writes for nn.Upsample(mode="nearest"); other modes would pick other pixels.
    if (ctm != "asymmetric" || nm != "floor")
        c.fail(
            fmt::format("Resize with coordinate_transformation_mode '{}' and nearest_mode '{}' is not supported "
                        "(asymmetric + floor only)",
                        ctm, nm));
    return at::upsample_nearest2d(x, {sizes[2], sizes[3]});
}

at::Tensor op_gather(const Ctx& c) {
    const auto& x = c.input(0);
    at::Tensor idx = c.input(1).to(at::kLong);
    const int64_t ax = norm_axis(c.i("axis", 0), x.dim(), c);
    idx = at::where(idx < 0, idx + x.size(ax), idx);
    auto flat = at::index_select(x, ax, idx.reshape({-1}));
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().begin() + ax);
    for (const auto d : idx.sizes()) shape.push_back(d);
    for (int64_t k = ax + 1; k < x.dim(); ++k) shape.push_back(x.size(k));
    return flat.reshape(shape);
}

at::Tensor op_cast(const Ctx& c) {
    return c.input(0).to(
        scalar_type(static_cast<int>(c.i("to", kFloat)), c.source + ": node '" + c.node.name + "' (Cast)"));
}

at::Tensor op_flatten(const Ctx& c) {
    const auto& x = c.input(0);
    const int64_t ax = c.i("axis", 1) < 0 ? c.i("axis", 1) + x.dim() : c.i("axis", 1);
    int64_t a = 1;
    for (int64_t k = 0; k < ax; ++k) a *= x.size(k);
    return x.reshape({a, -1});
}

at::Tensor op_gemm(const Ctx& c) {
    at::Tensor a = c.input(0), b = c.input(1);
    if (c.i("transA", 0)) a = a.t();
    if (c.i("transB", 0)) b = b.t();
    at::Tensor y = at::matmul(a, b) * c.f("alpha", 1.0);
    if (c.has(2)) y = y + c.in[2] * c.f("beta", 1.0);
    return y;
}

std::vector<at::Tensor> run_node(const Ctx& c) {
    const auto& op = c.node.op_type;
    auto one = [](at::Tensor t) { return std::vector<at::Tensor>{std::move(t)}; };
    if (op == "Conv") return one(op_conv(c));
    if (op == "MaxPool") return one(op_maxpool(c));
    if (op == "GlobalAveragePool") {
        std::vector<int64_t> dims(c.input(0).dim() - 2);
        std::iota(dims.begin(), dims.end(), 2);
        return one(c.input(0).mean(dims, true));
    }
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow" || op == "Max" || op == "Min" ||
        op == "Equal") {
        if ((op == "Max" || op == "Min") && c.in.size() != 2) c.fail("only two-input Max/Min are supported");
        return one(op_binary(c));
    }
    if (op == "Sigmoid") return one(at::sigmoid(c.input(0)));
    if (op == "Relu") return one(at::relu(c.input(0)));
    if (op == "Sqrt") return one(at::sqrt(c.input(0)));
    if (op == "Exp") return one(at::exp(c.input(0)));
    if (op == "Neg") return one(at::neg(c.input(0)));
    if (op == "Tanh") return one(at::tanh(c.input(0)));
    if (op == "Identity") return one(c.input(0));
    if (op == "HardSigmoid") return one(at::clamp(c.input(0) * c.f("alpha", 0.2) + c.f("beta", 0.5), 0.0, 1.0));
    if (op == "HardSwish") return one(c.input(0) * at::clamp(c.input(0) / 6.0 + 0.5, 0.0, 1.0));
    if (op == "LeakyRelu") return one(at::leaky_relu(c.input(0), c.f("alpha", 0.01)));
    if (op == "Softmax") {
        if (c.opset < 13 && c.i("axis", 1) != c.input(0).dim() - 1 && c.i("axis", 1) != -1)
            c.fail("Softmax before opset 13 over a non-last axis is not supported");
        return one(at::softmax(c.input(0), norm_axis(c.i("axis", -1), c.input(0).dim(), c)));
    }
    if (op == "Clip") return one(op_clip(c));
    if (op == "Concat") {
        std::vector<at::Tensor> parts;
        for (std::size_t k = 0; k < c.in.size(); ++k) parts.push_back(c.input(k));
        return one(at::cat(parts, norm_axis(c.i("axis", 0), parts.at(0).dim(), c)));
    }
    if (op == "Reshape") return one(op_reshape(c));
    if (op == "Flatten") return one(op_flatten(c));
    if (op == "Transpose") {
        auto perm = c.ints("perm");
        if (perm.empty())
            for (int64_t k = c.input(0).dim(); k-- > 0;) perm.push_back(k);
        return one(c.input(0).permute(perm).contiguous());
    }
    if (op == "Shape") return one(at::tensor(c.input(0).sizes().vec(), at::kLong));
    if (op == "Gather") return one(op_gather(c));
    if (op == "Slice") return one(op_slice(c));
    if (op == "Split") return op_split(c);
    if (op == "Squeeze") return one(op_squeeze(c));
    if (op == "Unsqueeze") return one(op_unsqueeze(c));
    if (op == "MatMul") return one(at::matmul(c.input(0), c.input(1)));
    if (op == "Gemm") return one(op_gemm(c));
    if (op == "ReduceSum" || op == "ReduceMean" || op == "ReduceL2" || op == "ReduceMax") return one(op_reduce(c));
    if (op == "Resize") return one(op_resize(c));
    if (op == "Cast") return one(op_cast(c));
    if (op == "Constant") {
        const auto* a = c.node.attr("value");
        if (!a || !a->t.defined()) c.fail("only Constant with a tensor 'value' is supported");
        return one(a->t);
    }
    if (op == "ConstantOfShape") {
        const auto* a = c.node.attr("value");
        at::Tensor v = a && a->t.defined() ? a->t : at::zeros({1}, at::kFloat);
        return one(at::full(to_ints(c.input(0)), v.reshape({}).item(), v.options()));
    }
    c.fail("internal: unknown operator");
}

}  // namespace

const Node::Attribute* Node::attr(const std::string& key) const {
    for (const auto& a : attributes)
        if (a.name == key) return &a;
    return nullptr;
}

const std::set<std::string>& supported_operators() {
    static const std::set<std::string> ops = {"Add",         "Cast",
                                              "Clip",        "Concat",
                                              "Constant",    "ConstantOfShape",
                                              "Conv",        "Div",
                                              "Equal",       "Exp",
                                              "Flatten",     "Gather",
                                              "Gemm",        "GlobalAveragePool",
                                              "HardSigmoid", "HardSwish",
                                              "Identity",    "LeakyRelu",
                                              "MatMul",      "Max",
                                              "MaxPool",     "Min",
                                              "Mul",         "Neg",
                                              "Pow",         "ReduceL2",
                                              "ReduceMax",   "ReduceMean",
                                              "ReduceSum",   "Relu",
                                              "Reshape",     "Resize",
                                              "Shape",       "Sigmoid",
                                              "Slice",       "Softmax",
                                              "Split",       "Sqrt",
                                              "Squeeze",     "Sub",
                                              "Tanh",        "Transpose",
                                              "Unsqueeze"};
    return ops;
}

Model Model::load(const fs::path& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw CheckpointError(fmt::format("{}: ONNX model file not found", path.string()));
    if (fs::is_directory(path, ec))
        throw CheckpointError(fmt::format("{}: is a directory, not an ONNX model file", path.string()));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CheckpointError(fmt::format("{}: cannot open the ONNX model file", path.string()));
    std::ostringstream ss;
    ss << in.rdbuf();
    Model m = parse(ss.str(), path.string());
    m.path_ = path;
    return m;
}

Model Model::parse(const std::string& bytes, const std::string& source) {
    Model m;
    m.source_ = source;
    if (bytes.empty()) throw CheckpointError(fmt::format("{}: empty file, not an ONNX model", source));
    Reader r{reinterpret_cast<const uint8_t*>(bytes.data()),
             reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size(), &m.source_};
    uint32_t f;
    int w;
    bool have_graph = false;
    std::vector<ValueInfo> graph_inputs;
    while (r.next(f, w)) {
        if (f == 8 && w == 2) {  // opset_import
            Reader o = r.sub();
            std::string domain;
            int64_t version = 0;
            while (o.next(f, w)) {
                if (f == 1)
                    domain = o.bytes();
                else if (f == 2)
                    version = static_cast<int64_t>(o.varint());
                else
                    o.skip(w);
            }
            if (domain.empty() || domain == "ai.onnx") m.opset_ = version;
        } else if (f == 7 && w == 2) {  // graph
            have_graph = true;
            Reader g = r.sub();
            while (g.next(f, w)) {
                switch (f) {
                    case 1:
                        m.nodes_.push_back(parse_node(g.sub(), m.source_));
                        break;
                    case 5: {
                        std::string name;
                        auto t = parse_tensor(g.sub(), m.source_ + ": initializer", &name);
                        m.initializers_[name] = t;
                        break;
                    }
                    case 11:
                        graph_inputs.push_back(parse_value_info(g.sub()));
                        break;
                    case 12:
                        m.outputs_.push_back(parse_value_info(g.sub()));
                        break;
                    default:
                        g.skip(w);
                }
            }
        } else {
            r.skip(w);
        }
    }
    if (!have_graph || m.nodes_.empty() || m.outputs_.empty())
        throw CheckpointError(fmt::format("{}: not an ONNX model (no graph with nodes and outputs)", source));
    for (auto& v : graph_inputs)
        if (!m.initializers_.count(v.name)) m.inputs_.push_back(std::move(v));
    if (m.opset_ == 0) m.opset_ = 11;
    // Unsupported operators, all at once.
    std::set<std::string> missing;
    for (const auto& n : m.nodes_) {
        if (!n.domain.empty() && n.domain != "ai.onnx")
            missing.insert(n.domain + "::" + n.op_type);
        else if (!supported_operators().count(n.op_type))
            missing.insert(n.op_type);
    }
    if (!missing.empty()) {
        std::string list;
        for (const auto& s : missing) list += (list.empty() ? "" : ", ") + s;
        throw CheckpointError(fmt::format("{}: operators ipa's ONNX runtime does not implement: {}", source, list));
    }
    // Values each node is the last user of (graph outputs are kept).
    std::unordered_map<std::string, std::size_t> last_use;
    for (std::size_t k = 0; k < m.nodes_.size(); ++k)
        for (const auto& in : m.nodes_[k].inputs)
            if (!in.empty()) last_use[in] = k;
    for (const auto& o : m.outputs_) last_use.erase(o.name);
    m.release_after_.resize(m.nodes_.size());
    for (const auto& [name, k] : last_use)
        if (!m.initializers_.count(name)) m.release_after_[k].push_back(name);
    return m;
}

std::set<std::string> Model::op_types() const {
    std::set<std::string> out;
    for (const auto& n : nodes_) out.insert(n.op_type);
    return out;
}

int64_t Model::parameter_count() const {
    int64_t n = 0;
    for (const auto& [_, t] : initializers_) n += t.numel();
    for (const auto& node : nodes_)
        if (node.op_type == "Constant")
            if (const auto* a = node.attr("value"); a && a->t.defined()) n += a->t.numel();
    return n;
}

Model Model::map_floating(const std::function<at::Tensor(const at::Tensor&)>& f) const {
    Model m = *this;
    for (auto& [_, t] : m.initializers_)
        if (t.is_floating_point()) t = f(t);
    for (auto& node : m.nodes_)
        for (auto& a : node.attributes)
            if (a.t.defined() && a.t.is_floating_point()) a.t = f(a.t);
    return m;
}

Model Model::to(at::Device device) const {
    Model m = map_floating([&](const at::Tensor& t) { return t.to(device); });
    m.device_ = device;
    return m;
}

Model Model::to(at::ScalarType dtype) const {
    return map_floating([&](const at::Tensor& t) { return t.to(dtype); });
}

void Model::expect_image_input(std::size_t index, int64_t h, int64_t w, const std::string& what) const {
    if (inputs_.size() <= index)
        throw CheckpointError(fmt::format("{}: the {} model needs an image input; this graph has {} inputs", source_,
                                          what, inputs_.size()));
    const auto& v = inputs_[index];
    const bool ok = v.elem_type == kFloat && v.shape.size() == 4 && (v.shape[0] == 1 || v.shape[0] == -1) &&
                    v.shape[1] == 3 && v.shape[2] == h && v.shape[3] == w;
    if (!ok) {
        std::string shape;
        for (const auto d : v.shape)
            shape += (shape.empty() ? "" : "x") + (d < 0 ? std::string("?") : std::to_string(d));
        throw CheckpointError(fmt::format(
            "{}: input '{}' is {} of type {}, but the {} model takes float 1x3x{}x{}; hint: is this the right ONNX "
            "file for {}?",
            source_, v.name, shape.empty() ? "of unknown shape" : shape, v.elem_type, what, h, w, what));
    }
}

std::vector<at::Tensor> Model::run(const std::vector<at::Tensor>& inputs) const {
    if (inputs.size() != inputs_.size())
        throw DataError(fmt::format("{}: the graph takes {} inputs, got {}", source_, inputs_.size(), inputs.size()));
    torch::NoGradGuard no_grad;
    Values vals;
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        const auto& info = inputs_[k];
        const auto& t = inputs[k];
        bool shape_ok = static_cast<std::size_t>(t.dim()) == info.shape.size() || info.shape.empty();
        for (std::size_t d = 0; shape_ok && d < info.shape.size(); ++d)
            shape_ok = info.shape[d] < 0 || info.shape[d] == t.size(static_cast<int64_t>(d));
        if (!shape_ok)
            throw DataError(fmt::format("{}: input '{}' has shape {}, the graph wants {}", source_, info.name,
                                        fmt::join(t.sizes().vec(), "x"), fmt::join(info.shape, "x")));
        vals[info.name] = t.device() == device_ ? t : t.to(device_);
    }
    for (std::size_t k = 0; k < nodes_.size(); ++k) {
        const Node& node = nodes_[k];
        Ctx c{node, source_, {}, opset_};
        for (const auto& name : node.inputs) {
            if (name.empty()) {
                c.in.emplace_back();
                continue;
            }
            if (auto it = vals.find(name); it != vals.end()) {
                c.in.push_back(it->second);
            } else if (auto jt = initializers_.find(name); jt != initializers_.end()) {
                c.in.push_back(jt->second);
            } else {
                c.fail("input '" + name + "' is not produced by any earlier node");
            }
        }
        // On an accelerator: a node that mixes a device tensor with CPU ones (shape-derived
        // integers, integer constants) works on the device (to_ints copies back what it reads).
        if (!device_.is_cpu()) {
            const bool on_device =
                std::any_of(c.in.begin(), c.in.end(), [](const at::Tensor& t) { return t.defined() && !t.is_cpu(); });
            if (on_device)
                for (auto& t : c.in)
                    if (t.defined() && t.is_cpu()) t = t.to(device_);
        }
        std::vector<at::Tensor> outs;
        try {
            outs = run_node(c);
        } catch (const CheckpointError&) {
            throw;
        } catch (const std::exception& e) {
            std::string msg = e.what();
            msg = msg.substr(0, msg.find('\n'));
            c.fail(msg);
        }
        if (outs.size() < node.outputs.size()) c.fail("produced fewer outputs than the node names");
        for (std::size_t o = 0; o < node.outputs.size(); ++o)
            if (!node.outputs[o].empty()) vals[node.outputs[o]] = std::move(outs[o]);
        for (const auto& name : release_after_[k]) vals.erase(name);
    }
    std::vector<at::Tensor> out;
    for (const auto& o : outputs_) {
        auto it = vals.find(o.name);
        if (it == vals.end()) throw CheckpointError(fmt::format("{}: output '{}' is never produced", source_, o.name));
        out.push_back(it->second);
    }
    return out;
}

}  // namespace ipa::pose::onnx
