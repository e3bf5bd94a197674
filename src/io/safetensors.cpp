#include "ipa/io/safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/io/mapped_file.h"

namespace ipa::io {
namespace fs = std::filesystem;
using json = nlohmann::json;

int64_t TensorInfo::numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

namespace {

[[noreturn]] void fail_safetensors(const fs::path& path, const std::string& what) {
    throw CheckpointError(fmt::format("safetensors '{}': {}", path.string(), what));
}

uint64_t read_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// Parses the header JSON, recording top-level keys seen more than once (nlohmann keeps
// the last silently).
json parse_header(const fs::path& path, const char* text, std::size_t len) {
    std::vector<std::string> duplicates;
    std::set<std::string> seen;
    json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::key && depth == 1) {
            const auto key = parsed.get<std::string>();
            if (!seen.insert(key).second) duplicates.push_back(key);
        }
        return true;
    };
    json header;
    try {
        header = json::parse(text, text + len, cb);
    } catch (const json::exception& e) {
        fail_safetensors(path, fmt::format("header is not valid JSON ({})", e.what()));
    }
    if (!header.is_object())
        fail_safetensors(path, fmt::format("header is a JSON {}, expected an object", header.type_name()));
    if (!duplicates.empty()) {
        fail_safetensors(path, fmt::format("duplicate tensor name(s) in header: {}", fmt::join(duplicates, ", ")));
    }
    return header;
}

TensorInfo parse_entry(const fs::path& path, const std::string& name, const json& e, uint64_t data_size) {
    auto bad = [&](const std::string& what) { fail_safetensors(path, fmt::format("tensor '{}': {}", name, what)); };
    if (!e.is_object()) bad(fmt::format("entry is a JSON {}, expected an object", e.type_name()));
    for (const char* k : {"dtype", "shape", "data_offsets"}) {
        if (!e.contains(k)) bad(fmt::format("entry has no '{}'", k));
    }
    TensorInfo t;
    t.name = name;
    if (!e["dtype"].is_string()) bad("'dtype' is not a string");
    const auto dtype_name = e["dtype"].get<std::string>();
    const auto dtype = parse_stored_dtype(dtype_name);
    if (!dtype) {
        bad(
            fmt::format("unsupported dtype '{}' (supported: F64, F32, F16, BF16, I64, I32, I16, "
                        "I8, U8, BOOL, F8_E4M3, F8_E5M2)",
                        dtype_name));
    }
    t.dtype = *dtype;
    const auto& shape = e["shape"];
    if (!shape.is_array()) bad("'shape' is not a list");
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : shape) {
        if (!d.is_number_integer()) bad(fmt::format("shape {} has a non-integer entry", shape.dump()));
        if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0) {
            bad(fmt::format("shape {} has a negative dimension", shape.dump()));
        }
        const uint64_t v = d.get<uint64_t>();
        if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            bad(fmt::format("shape {} has an absurd dimension", shape.dump()));
        }
        if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / v) overflow = true;
        numel *= v;
        t.shape.push_back(static_cast<int64_t>(v));
    }
    if (std::count(t.shape.begin(), t.shape.end(), 0) > 0) {
        numel = 0;
        overflow = false;
    }
    const auto& offs = e["data_offsets"];
    if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned()) {
        bad(fmt::format("'data_offsets' must be two non-negative integers, got {}", offs.dump()));
    }
    t.begin = offs[0].get<uint64_t>();
    t.end = offs[1].get<uint64_t>();
    if (t.begin > t.end) bad(fmt::format("data_offsets [{}, {}] are reversed", t.begin, t.end));
    if (t.end > data_size) {
        bad(
            fmt::format("data_offsets [{}, {}] run past the end of the data section ({} bytes; "
                        "is the file truncated?)",
                        t.begin, t.end, data_size));
    }
    const uint64_t esize = stored_dtype_size(t.dtype);
    if (overflow || numel > std::numeric_limits<uint64_t>::max() / esize) {
        bad(fmt::format("shape {} is absurd: its size does not fit in 64 bits", shape.dump()));
    }
    if (t.end - t.begin != numel * esize) {
        bad(fmt::format("data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", t.begin, t.end,
                        t.end - t.begin, shape.dump(), dtype_name, numel * esize));
    }
    return t;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
    SafetensorsFile f;
    f.path_ = path;
    f.file_ = MappedFile::open(path);
    const uint64_t size = f.file_->size();
    if (size < 8) fail_safetensors(path, fmt::format("file is {} bytes, too short for the 8-byte header length", size));
    const uint64_t header_len = read_le64(f.file_->data());
    if (header_len > kMaxSafetensorsHeader) {
        fail_safetensors(path, fmt::format("header length {} exceeds the {}-byte limit (not a safetensors file?)",
                                           header_len, kMaxSafetensorsHeader));
    }
    if (header_len > size - 8) {
        fail_safetensors(
            path, fmt::format("header length {} runs past the end of the {}-byte file (truncated?)", header_len, size));
    }
    const json header = parse_header(path, reinterpret_cast<const char*>(f.file_->data() + 8), header_len);
    f.data_start_ = 8 + header_len;
    f.data_size_ = size - f.data_start_;

    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object()) fail_safetensors(path, "__metadata__ is not an object");
            for (const auto& [k, v] : entry.items()) {
                if (!v.is_string())
                    fail_safetensors(path, fmt::format("__metadata__ value of '{}' is not a string", k));
                f.metadata_[k] = v.get<std::string>();
            }
            continue;
        }
        f.tensors_.push_back(parse_entry(path, name, entry, f.data_size_));
    }
    // Overlap check on the byte ranges (empty tensors occupy nothing).
    std::vector<const TensorInfo*> by_offset;
    for (const auto& t : f.tensors_) {
        if (t.end > t.begin) by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
        const auto* a = by_offset[i - 1];
        const auto* b = by_offset[i];
        if (b->begin < a->end) {
            fail_safetensors(path, fmt::format("tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", a->name, a->begin,
                                               a->end, b->name, b->begin, b->end));
        }
    }
    std::sort(f.tensors_.begin(), f.tensors_.end(),
              [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
    for (std::size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
    return f;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
    const TensorInfo* t = find(name);
    if (!t) fail_safetensors(path_, fmt::format("no tensor named '{}'", name));
    uint8_t* ptr = file_->mutable_data() + data_start_ + t->begin;
    if (t->dtype == StoredDType::F8_E4M3 || t->dtype == StoredDType::F8_E5M2) {
        auto out = torch::empty(t->shape, torch::kFloat);
        decode_float8(ptr, out.data_ptr<float>(), static_cast<std::size_t>(t->numel()), t->dtype);
        return out;
    }
    const auto options = torch::TensorOptions().dtype(loaded_scalar_type(t->dtype));
    if (t->numel() == 0) return torch::empty(t->shape, options);
    auto keep = file_;
    return torch::from_blob(
        ptr, t->shape, [keep](void*) mutable { keep.reset(); }, options);
}

void save_safetensors(const fs::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
    json header = json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::vector<at::Tensor> cpu;
    cpu.reserve(tensors.size());
    std::set<std::string> names;
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
        if (name == "__metadata__") {
            throw CheckpointError(fmt::format("cannot save '{}': '__metadata__' is reserved", path.string()));
        }
        if (!names.insert(name).second) {
            throw CheckpointError(fmt::format("cannot save '{}': duplicate tensor name '{}'", path.string(), name));
        }
        if (!t.defined()) {
            throw CheckpointError(fmt::format("cannot save '{}': tensor '{}' is undefined", path.string(), name));
        }
        const StoredDType d = stored_dtype_for(t.scalar_type());
        auto c = t.detach().to(torch::kCPU).contiguous();
        const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * stored_dtype_size(d);
        header[name] = {
            {"dtype", stored_dtype_name(d)}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
        offset += nbytes;
        cpu.push_back(std::move(c));
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
    uint8_t len_bytes[8];
    for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>(text.size() >> (8 * i));
    AtomicFile out(path);
    out.write(len_bytes, 8);
    out.write(text);
    for (const auto& c : cpu) out.write(c.data_ptr(), c.numel() * c.element_size());
    out.commit();
}

ShardIndex ShardIndex::read(const fs::path& index_json) {
    std::string text;
    try {
        text = read_file(index_json);
    } catch (const Error& e) {
        throw CheckpointError(e.what());
    }
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw CheckpointError(fmt::format("shard index '{}' is not valid JSON ({})", index_json.string(), e.what()));
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
        throw CheckpointError(fmt::format("shard index '{}' has no 'weight_map' object", index_json.string()));
    }
    ShardIndex idx;
    for (const auto& [k, v] : j["weight_map"].items()) {
        if (!v.is_string()) {
            throw CheckpointError(
                fmt::format("shard index '{}': weight_map['{}'] is not a file name", index_json.string(), k));
        }
        idx.weight_map[k] = v.get<std::string>();
    }
    if (j.contains("metadata") && j["metadata"].is_object()) {
        for (const auto& [k, v] : j["metadata"].items()) {
            idx.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
        }
    }
    return idx;
}

}  // namespace ipa::io
