#include "ipa/io/pth.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <cctype>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <unordered_set>

#include "ipa/core/error.h"
#include "ipa/io/mapped_file.h"
#include "ipa/io/pickle.h"
#include "ipa/io/zip_reader.h"

namespace ipa::io {
namespace fs = std::filesystem;

namespace {

using Kind = PickleValue::Kind;
using G = PickleGlobal;

constexpr int kMaxNesting = 64;       // nested dicts
constexpr int kMaxRebuildDepth = 8;   // parameter(from_type(tensor(...))) chains
constexpr std::size_t kMaxDims = 64;  // tensor dimensions

[[noreturn]] void fail_pth(const fs::path& path, const std::string& what) {
    throw CheckpointError(fmt::format("checkpoint '{}': {}", path.string(), what));
}

std::string esc(const std::string& s) { return escape_for_message(s); }

// The pre-1.6 format is a bare pickle stream (or, before 0.4, a tar archive).
void reject_legacy(const MappedFile& file) {
    const uint8_t* d = file.data();
    const std::size_t n = file.size();
    if (n >= 2 && d[0] == 0x80 && d[1] >= 2 && d[1] <= 5) {
        fail_pth(
            file.path(),
            "legacy torch.save format (a bare pickle stream: PyTorch < 1.6 or _use_new_zipfile_serialization=False) "
            "is not supported; re-save it with torch >= 1.6: torch.save(torch.load(path), new_path)");
    }
    if (n >= 262 && std::memcmp(d + 257, "ustar", 5) == 0) {
        fail_pth(file.path(),
                 "legacy tar-based torch.save format (PyTorch < 0.4) is not supported; re-save it with "
                 "torch >= 1.6");
    }
}

// `<prefix>/data.pkl` for a single top-level directory: usually "archive"; torch 1.x saving
// to a path used the file's stem.
std::string find_prefix(const fs::path& path, const ZipReader& zip) {
    std::vector<std::string> found;
    for (const auto& e : zip.entries()) {
        const auto slash = e.name.find('/');
        if (slash != std::string::npos && slash > 0 && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
            found.push_back(e.name);
        }
    }
    if (found.size() == 1) return found[0].substr(0, found[0].find('/'));
    std::vector<std::string> names;
    for (const auto& n : found.empty() ? zip.names() : found) names.push_back(esc(n));
    if (names.size() > 8) {
        names.resize(8);
        names.push_back("…");
    }
    if (found.empty()) {
        fail_pth(path, fmt::format("no '<dir>/data.pkl' entry, so this zip archive is not a torch.save checkpoint "
                                   "(entries: {})",
                                   fmt::join(names, ", ")));
    }
    fail_pth(path,
             fmt::format("several top-level data.pkl entries ({}), expected exactly one", fmt::join(names, ", ")));
}

void check_byteorder(const fs::path& path, const ZipReader& zip, const std::string& prefix) {
    const std::string name = prefix + "/byteorder";
    if (!zip.contains(name)) return;  // written since torch 2.1; older files are little-endian
    const auto& e = zip.entry(name);
    if (e.size > 64) fail_pth(path, fmt::format("entry '{}' has {} bytes, expected 'little'", name, e.size));
    std::string order(reinterpret_cast<const char*>(zip.data(e)), static_cast<std::size_t>(e.size));
    while (!order.empty() && std::isspace(static_cast<unsigned char>(order.back()))) order.pop_back();
    if (order == "big") {
        fail_pth(path, fmt::format("entry '{}' says the storages are big-endian; only little-endian checkpoints are "
                                   "supported (re-save it on a little-endian machine)",
                                   name));
    }
    if (order != "little") fail_pth(path, fmt::format("entry '{}' is '{}', expected 'little'", name, esc(order)));
}

std::optional<c10::ScalarType> storage_dtype(const std::string& qualified_name) {
    using T = c10::ScalarType;
    static const std::pair<const char*, T> table[] = {
        {"torch.FloatStorage", T::Float},
        {"torch.DoubleStorage", T::Double},
        {"torch.HalfStorage", T::Half},
        {"torch.BFloat16Storage", T::BFloat16},
        {"torch.LongStorage", T::Long},
        {"torch.IntStorage", T::Int},
        {"torch.ShortStorage", T::Short},
        {"torch.CharStorage", T::Char},
        {"torch.ByteStorage", T::Byte},
        {"torch.BoolStorage", T::Bool},
        {"torch.ComplexFloatStorage", T::ComplexFloat},
        {"torch.ComplexDoubleStorage", T::ComplexDouble},
        {"torch.UntypedStorage", T::Byte},
        {"torch.storage.UntypedStorage", T::Byte},
    };
    for (const auto& [n, t] : table) {
        if (qualified_name == n) return t;
    }
    return std::nullopt;
}

std::optional<c10::ScalarType> tensor_dtype(const std::string& torch_name) {
    using T = c10::ScalarType;
    static const std::pair<const char*, T> table[] = {
        {"torch.float32", T::Float},
        {"torch.float", T::Float},
        {"torch.float64", T::Double},
        {"torch.double", T::Double},
        {"torch.float16", T::Half},
        {"torch.half", T::Half},
        {"torch.bfloat16", T::BFloat16},
        {"torch.int64", T::Long},
        {"torch.long", T::Long},
        {"torch.int32", T::Int},
        {"torch.int", T::Int},
        {"torch.int16", T::Short},
        {"torch.short", T::Short},
        {"torch.int8", T::Char},
        {"torch.uint8", T::Byte},
        {"torch.bool", T::Bool},
        {"torch.complex64", T::ComplexFloat},
        {"torch.cfloat", T::ComplexFloat},
        {"torch.complex128", T::ComplexDouble},
        {"torch.cdouble", T::ComplexDouble},
    };
    for (const auto& [n, t] : table) {
        if (torch_name == n) return t;
    }
    return std::nullopt;
}

struct StorageRef {
    std::string key;  // zip entry `<prefix>/data/<key>`
    c10::ScalarType dtype = c10::ScalarType::Byte;
    int64_t numel = 0;  // in elements of dtype
};

struct TensorSpec {
    StorageRef storage;
    c10::ScalarType dtype = c10::ScalarType::Byte;  // differs from the storage's only for untyped storages
    int64_t offset = 0;                             // offset, sizes and strides count elements of dtype
    std::vector<int64_t> sizes, strides;
};

// Walks the unpickled graph: flattens nested dicts, evaluates the recorded tensor rebuild
// calls, and makes each tensor a strided view of a 1-D tensor over its storage's zip entry
// (one per storage and dtype), so tensors sharing a storage share memory.
class Loader {
public:
    Loader(const ZipReader& zip, std::string prefix, std::vector<std::pair<std::string, at::Tensor>>& tensors,
           std::vector<std::string>& skipped, std::size_t budget)
        : zip_(zip),
          prefix_(std::move(prefix)),
          path_(zip.file()->path()),
          tensors_(tensors),
          skipped_(skipped),
          budget_(budget) {}

    void load_root(const PickleValue& root) {
        if (root.kind != Kind::dict) {
            fail_pth(path_, fmt::format("'{}/data.pkl' holds a Python {}, expected a dict (a state dict)", prefix_,
                                        pickle_kind_name(root.kind)));
        }
        visit(root, "", 0);
    }

private:
    [[noreturn]] void bad(const std::string& key, const std::string& what) const {
        fail_pth(path_, fmt::format("tensor '{}' in '{}/data.pkl': {}", esc(key), prefix_, what));
    }

    std::string key_text(const PickleValue& k, const std::string& parent) const {
        if (k.kind == Kind::string) return k.text;
        if (k.kind == Kind::integer) return std::to_string(k.integer);
        if (k.kind == Kind::boolean) return k.boolean ? "True" : "False";
        if (k.kind == Kind::none) return "None";
        fail_pth(path_, fmt::format("dict '{}' has a key of type {}, expected str or int", esc(parent),
                                    pickle_kind_name(k.kind)));
    }

    void visit(const PickleValue& v, const std::string& key, int depth) {
        if (v.kind == Kind::dict && (depth == 0 || !v.entries.empty())) {
            if (depth >= kMaxNesting)
                fail_pth(path_, fmt::format("dicts nested deeper than {} at '{}'", kMaxNesting, esc(key)));
            for (const auto& [k, child] : v.entries) {
                const std::string part = key_text(*k, key);
                visit(*child, key.empty() ? part : key + "." + part, depth + 1);
            }
            return;
        }
        if (budget_-- == 0) {
            fail_pth(path_,
                     "the object graph expands to far more entries than it holds values (shared sub-dicts "
                     "nested too often); refusing");
        }
        if (!names_.insert(key).second) {
            fail_pth(path_, fmt::format("key '{}' occurs twice after flattening nested dicts with '.'", esc(key)));
        }
        if (v.kind == Kind::call) {
            tensors_.emplace_back(key, make_tensor(key, rebuild(key, v, 0)));
        } else {
            skipped_.push_back(key);
        }
    }

    // ---- the recorded torch._utils calls ------------------------------------------------
    const PickleValue& arg(const std::string& key, const PickleValue& v, Kind kind, const char* what) const {
        if (v.kind != kind) {
            bad(key, fmt::format("{} must be a {}, got a {}", what, pickle_kind_name(kind), pickle_kind_name(v.kind)));
        }
        return v;
    }

    std::vector<int64_t> dims(const std::string& key, const PickleValue& v, const char* what) const {
        if (v.kind != Kind::tuple)
            bad(key, fmt::format("{} must be a tuple, got a {}", what, pickle_kind_name(v.kind)));
        if (v.items.size() > kMaxDims) {
            bad(key, fmt::format("{} has {} dimensions (at most {} supported)", what, v.items.size(), kMaxDims));
        }
        std::vector<int64_t> out;
        for (const PickleValue* i : v.items) {
            if (i->kind != Kind::integer || i->integer < 0) bad(key, fmt::format("{} must hold ints >= 0", what));
            out.push_back(i->integer);
        }
        return out;
    }

    // ('storage', storage_type, key, location, numel); the location is ignored (loads on CPU).
    StorageRef storage_ref(const std::string& key, const PickleValue& v) const {
        arg(key, v, Kind::persistent_id, "the storage argument");
        const PickleValue& pid = *v.items[0];
        if (pid.kind != Kind::tuple || pid.items.size() != 5 || pid.items[0]->kind != Kind::string ||
            pid.items[0]->text != "storage") {
            bad(key, "persistent id must be a tuple ('storage', storage_type, key, location, numel)");
        }
        const auto& type = arg(key, *pid.items[1], Kind::global, "the storage type");
        const auto dtype = storage_dtype(type.text);
        if (type.global != G::storage_type || !dtype) {
            bad(key, fmt::format("unsupported storage type '{}' (supported: Float, Double, Half, BFloat16, Long, Int, "
                                 "Short, Char, Byte, Bool, ComplexFloat, ComplexDouble, Untyped)",
                                 esc(type.text)));
        }
        StorageRef s;
        s.dtype = *dtype;
        s.key = arg(key, *pid.items[2], Kind::string, "the storage key").text;
        arg(key, *pid.items[3], Kind::string, "the storage location");
        s.numel = arg(key, *pid.items[4], Kind::integer, "the storage numel").integer;
        if (s.numel < 0) bad(key, fmt::format("storage '{}' has negative numel {}", esc(s.key), s.numel));
        return s;
    }

    TensorSpec rebuild(const std::string& key, const PickleValue& call, int depth) const {
        if (depth > kMaxRebuildDepth) bad(key, "tensor rebuild calls nested too deep");
        const auto& a = call.items;
        auto arity = [&](std::size_t lo, std::size_t hi) {
            if (a.size() < lo || a.size() > hi) {
                bad(key, fmt::format("{} takes {} arguments, got {}", call.text,
                                     lo == hi ? std::to_string(lo) : fmt::format("{} to {}", lo, hi), a.size()));
            }
        };
        switch (call.global) {
            case G::rebuild_tensor_v2:    // (storage, offset, size, stride, requires_grad, hooks[, metadata])
            case G::rebuild_tensor_v3: {  // v3 (torch 2.x): dtype before metadata
                const bool v3 = call.global == G::rebuild_tensor_v3;
                arity(v3 ? 7 : 6, v3 ? 8 : 7);
                TensorSpec t;
                t.storage = storage_ref(key, *a[0]);
                t.dtype = t.storage.dtype;
                if (v3) {
                    const auto& name = arg(key, *a[6], Kind::string, "the dtype").text;
                    const auto dtype = tensor_dtype(name);
                    if (!dtype) bad(key, fmt::format("tensor dtype '{}' is not supported by this LibTorch", esc(name)));
                    t.dtype = *dtype;
                }
                t.offset = arg(key, *a[1], Kind::integer, "storage_offset").integer;
                if (t.offset < 0) bad(key, fmt::format("negative storage_offset {}", t.offset));
                t.sizes = dims(key, *a[2], "size");
                t.strides = dims(key, *a[3], "stride");
                if (t.sizes.size() != t.strides.size()) {
                    bad(key, fmt::format("size has {} dimensions but stride has {}", t.sizes.size(), t.strides.size()));
                }
                arg(key, *a[4], Kind::boolean, "requires_grad");
                arg(key, *a[5], Kind::dict, "backward_hooks");
                return t;
            }
            case G::rebuild_parameter:             // (data, requires_grad, hooks)
            case G::rebuild_parameter_with_state:  // (data, requires_grad, hooks, state)
                arity(call.global == G::rebuild_parameter ? 3 : 4, call.global == G::rebuild_parameter ? 3 : 4);
                return rebuild(key, arg(key, *a[0], Kind::call, "the parameter's data"), depth + 1);
            case G::rebuild_from_type_v2: {  // (func, type, args, state): Python attributes are dropped
                arity(4, 4);
                const auto& type = arg(key, *a[1], Kind::global, "the tensor type");
                if (type.global != G::tensor_type) bad(key, fmt::format("'{}' is not a tensor type", esc(type.text)));
                PickleValue inner;  // the call func(*args)
                inner.kind = Kind::call;
                inner.global = arg(key, *a[0], Kind::global, "the rebuild function").global;
                inner.text = a[0]->text;
                inner.items = arg(key, *a[2], Kind::tuple, "the rebuild arguments").items;
                if (inner.global == G::rebuild_from_type_v2) bad(key, "nested _rebuild_from_type_v2");
                return rebuild(key, inner, depth + 1);
            }
            default:
                bad(key, fmt::format("{} is not a tensor rebuild function", esc(call.text)));
        }
    }

    // ---- views of the archive -----------------------------------------------------------
    const at::Tensor& storage(const std::string& key, const StorageRef& s, c10::ScalarType dtype) {
        const auto cached = storages_.find({s.key, dtype});
        if (cached != storages_.end()) return cached->second;
        const std::string name = prefix_ + "/data/" + s.key;
        if (!zip_.contains(name)) {
            fail_pth(path_, fmt::format("tensor '{}' uses storage '{}', but the archive has no entry '{}' (the file is "
                                        "incomplete or corrupt)",
                                        esc(key), esc(s.key), esc(name)));
        }
        const auto& e = zip_.entry(name);
        const uint64_t storage_esize = c10::elementSize(s.dtype);
        const auto numel = static_cast<uint64_t>(s.numel);
        if (numel > std::numeric_limits<uint64_t>::max() / storage_esize || e.size < numel * storage_esize) {
            fail_pth(path_, fmt::format("entry '{}' has {} bytes, expected {} {} elements of {} bytes (tensor '{}')",
                                        esc(name), e.size, s.numel, c10::toString(s.dtype), storage_esize, esc(key)));
        }
        const uint64_t esize = c10::elementSize(dtype);
        const auto count = static_cast<int64_t>(numel * storage_esize / esize);
        const uint8_t* ptr = zip_.data(e);
        const auto options = at::TensorOptions().dtype(dtype).device(at::kCPU);
        at::Tensor base;
        if (reinterpret_cast<uintptr_t>(ptr) % esize == 0) {
            auto keep_mapping = [file = zip_.file()](void*) {};  // alive as long as any view
            base = torch::from_blob(zip_.file()->mutable_data() + e.offset_of_data, {count}, keep_mapping, options);
        } else {  // misaligned data (not written by torch.save, which aligns to 64): copy
            base = at::empty({count}, options);
            if (count > 0) std::memcpy(base.data_ptr(), ptr, static_cast<std::size_t>(count) * esize);
        }
        return storages_.emplace(std::make_pair(s.key, dtype), std::move(base)).first->second;
    }

    at::Tensor make_tensor(const std::string& key, const TensorSpec& t) {
        const at::Tensor& base = storage(key, t.storage, t.dtype);
        const auto numel = static_cast<uint64_t>(base.numel());
        // The element count must fit in int64 and the largest element index the view touches
        // must lie inside the storage (stride-0 dimensions touch no extra memory).
        bool empty = false;
        uint64_t count = 1;
        for (auto s : t.sizes) {
            empty = empty || s == 0;
            const auto u = static_cast<uint64_t>(s);
            if (u != 0 && count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / u) {
                bad(key, fmt::format("absurd size [{}]", fmt::join(t.sizes, ", ")));
            }
            count *= u;
        }
        auto last = static_cast<uint64_t>(t.offset);
        bool fits = empty ? last <= numel : last < numel;
        for (std::size_t d = 0; fits && !empty && d < t.sizes.size(); ++d) {
            const auto span = static_cast<uint64_t>(t.sizes[d] - 1);
            const auto stride = static_cast<uint64_t>(t.strides[d]);
            if (span == 0 || stride == 0) continue;
            fits = span <= (numel - 1 - last) / stride;
            last += fits ? span * stride : 0;
        }
        if (!fits) {
            fail_pth(path_,
                     fmt::format("tensor '{}' (storage_offset {}, size [{}], stride [{}]) reaches past its storage "
                                 "'{}/data/{}' of {} {} elements",
                                 esc(key), t.offset, fmt::join(t.sizes, ", "), fmt::join(t.strides, ", "), prefix_,
                                 esc(t.storage.key), numel, c10::toString(t.dtype)));
        }
        try {
            return base.as_strided(t.sizes, t.strides, t.offset);
        } catch (const c10::Error& e) {
            bad(key, e.what_without_backtrace());
        }
    }

    const ZipReader& zip_;
    std::string prefix_;
    fs::path path_;
    std::vector<std::pair<std::string, at::Tensor>>& tensors_;
    std::vector<std::string>& skipped_;
    std::size_t budget_;
    std::map<std::pair<std::string, c10::ScalarType>, at::Tensor> storages_;
    std::unordered_set<std::string> names_;
};

}  // namespace

PthFile PthFile::open(const fs::path& path) {
    PthFile out;
    out.path_ = path;
    out.file_ = MappedFile::open(path);
    reject_legacy(*out.file_);
    const ZipReader zip = ZipReader::open(out.file_);
    const std::string prefix = find_prefix(path, zip);
    check_byteorder(path, zip, prefix);

    const auto& pkl = zip.entry(prefix + "/data.pkl");
    zip.verify_crc(pkl);
    const Unpickled graph =
        unpickle(zip.data(pkl), static_cast<std::size_t>(pkl.size), fmt::format("{}:{}", path.string(), pkl.name));
    Loader(zip, prefix, out.tensors_, out.skipped_, 4 * graph.value_count() + 16).load_root(graph.root());
    return out;
}

}  // namespace ipa::io
