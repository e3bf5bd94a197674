#include "ipa/io/checkpoint.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "ipa/core/error.h"
#include "ipa/core/strings.h"
#include "ipa/io/pth.h"

namespace ipa::io {
namespace fs = std::filesystem;

namespace {

std::string torch_dtype_name(c10::ScalarType t) {
    try {
        return stored_dtype_name(stored_dtype_for(t));
    } catch (const Error&) {
        return c10::toString(t);
    }
}

}  // namespace

int64_t TensorMeta::numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

uint64_t TensorMeta::nbytes() const {
    const auto d = parse_stored_dtype(dtype);
    return static_cast<uint64_t>(numel()) * (d ? stored_dtype_size(*d) : 0);
}

Checkpoint::Checkpoint() = default;
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

void Checkpoint::add_shard(SafetensorsFile shard, const fs::path& origin) {
    const int source = static_cast<int>(shards_.size());
    for (std::size_t i = 0; i < shard.tensors().size(); ++i) {
        const auto& name = shard.tensors()[i].name;
        if (where_.count(name)) {
            const auto& other = shards_[where_[name].source].path();
            throw CheckpointError(fmt::format("checkpoint '{}': tensor '{}' is in both '{}' and '{}'", origin.string(),
                                              name, other.string(), shard.path().string()));
        }
        where_[name] = Where{source, i};
    }
    for (const auto& [k, v] : shard.metadata()) metadata_.emplace(k, v);
    shards_.push_back(std::move(shard));
}

Checkpoint Checkpoint::open(const fs::path& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
        throw CheckpointError(fmt::format("checkpoint '{}' does not exist", path.string()));
    }
    Checkpoint ck;
    ck.description_ = path.string();
    fs::path index;
    std::vector<fs::path> files;
    if (fs::is_directory(path, ec)) {
        std::vector<fs::path> indexes;
        for (const auto& e : fs::directory_iterator(path)) {
            const auto name = e.path().filename().string();
            if (ends_with(name, ".safetensors.index.json"))
                indexes.push_back(e.path());
            else if (ends_with(name, ".safetensors") && e.is_regular_file())
                files.push_back(e.path());
        }
        std::sort(indexes.begin(), indexes.end());
        std::sort(files.begin(), files.end());
        if (indexes.size() > 1) {
            std::vector<std::string> names;
            for (const auto& i : indexes) names.push_back(i.filename().string());
            throw CheckpointError(
                fmt::format("checkpoint directory '{}' has {} shard indexes ({}); pass the one to use", path.string(),
                            indexes.size(), fmt::join(names, ", ")));
        }
        if (indexes.size() == 1)
            index = indexes[0];
        else if (files.empty()) {
            throw CheckpointError(fmt::format(
                "checkpoint directory '{}' has no *.safetensors or *.safetensors.index.json", path.string()));
        }
    } else if (ends_with(path.filename().string(), ".json")) {
        index = path;
    } else if (ends_with(path.filename().string(), ".safetensors")) {
        files.push_back(path);
    } else {
        ck.pth_ = std::make_unique<PthFile>(PthFile::open(path));
        for (std::size_t i = 0; i < ck.pth_->tensors().size(); ++i) {
            ck.where_[ck.pth_->tensors()[i].first] = Where{-1, i};
        }
        return ck;
    }

    if (!index.empty()) {
        const ShardIndex idx = ShardIndex::read(index);
        const fs::path dir = index.parent_path();
        std::vector<std::string> shard_names;
        for (const auto& [tensor, file] : idx.weight_map) {
            if (std::find(shard_names.begin(), shard_names.end(), file) == shard_names.end()) {
                shard_names.push_back(file);
            }
        }
        std::sort(shard_names.begin(), shard_names.end());
        for (const auto& file : shard_names) {
            const fs::path shard_path = dir / file;
            if (!fs::exists(shard_path, ec)) {
                throw CheckpointError(fmt::format("shard index '{}' names '{}', which does not exist", index.string(),
                                                  shard_path.string()));
            }
            ck.add_shard(SafetensorsFile::open(shard_path), index);
        }
        for (const auto& [tensor, file] : idx.weight_map) {
            const auto it = ck.where_.find(tensor);
            if (it == ck.where_.end() || ck.shards_[it->second.source].path().filename() != file) {
                throw CheckpointError(
                    fmt::format("shard index '{}' puts '{}' in '{}', but that "
                                "shard does not contain it",
                                index.string(), tensor, file));
            }
        }
        for (const auto& [k, v] : idx.metadata) ck.metadata_.emplace(k, v);
        return ck;
    }
    for (const auto& f : files) ck.add_shard(SafetensorsFile::open(f), path);
    return ck;
}

Checkpoint Checkpoint::from_tensors(NamedTensors tensors, std::string description) {
    Checkpoint ck;
    ck.description_ = std::move(description);
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        if (!ck.where_.emplace(tensors[i].first, Where{-1, i}).second) {
            throw CheckpointError(fmt::format("{}: duplicate tensor name '{}'", ck.description_, tensors[i].first));
        }
    }
    ck.memory_ = std::move(tensors);
    return ck;
}

std::vector<TensorMeta> Checkpoint::entries() const {
    std::vector<TensorMeta> out;
    out.reserve(where_.size());
    for (const auto& [name, w] : where_) {
        TensorMeta m;
        m.name = name;
        if (w.source >= 0) {
            const auto& shard = shards_[w.source];
            const auto& info = shard.tensors()[w.i];
            m.dtype = stored_dtype_name(info.dtype);
            m.shape = info.shape;
            m.file = shard.path().string();
        } else {
            const auto& t = pth_ ? pth_->tensors()[w.i].second : memory_[w.i].second;
            m.dtype = torch_dtype_name(t.scalar_type());
            m.shape = t.sizes().vec();
            m.file = pth_ ? pth_->path().string() : description_;
        }
        out.push_back(std::move(m));
    }
    std::sort(out.begin(), out.end(), [](const TensorMeta& a, const TensorMeta& b) { return a.name < b.name; });
    return out;
}

std::vector<std::string> Checkpoint::names() const {
    std::vector<std::string> out;
    out.reserve(where_.size());
    for (const auto& kv : where_) out.push_back(kv.first);
    std::sort(out.begin(), out.end());
    return out;
}

at::Tensor Checkpoint::get(const std::string& name) const {
    const auto it = where_.find(name);
    if (it == where_.end()) {
        throw CheckpointError(fmt::format("checkpoint '{}' has no tensor '{}'", description_, name));
    }
    const Where& w = it->second;
    if (w.source >= 0) return shards_[w.source].tensor(name);
    return pth_ ? pth_->tensors()[w.i].second : memory_[w.i].second;
}

std::vector<int64_t> Checkpoint::shape(const std::string& name) const {
    const auto it = where_.find(name);
    if (it == where_.end()) {
        throw CheckpointError(fmt::format("checkpoint '{}' has no tensor '{}'", description_, name));
    }
    const Where& w = it->second;
    if (w.source >= 0) return shards_[w.source].tensors()[w.i].shape;
    return (pth_ ? pth_->tensors()[w.i].second : memory_[w.i].second).sizes().vec();
}

std::vector<fs::path> Checkpoint::files() const {
    std::vector<fs::path> out;
    for (const auto& s : shards_) out.push_back(s.path());
    if (pth_) out.push_back(pth_->path());
    return out;
}

}  // namespace ipa::io
