#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ipa/io/dtype.h"

namespace ipa::io {

class MappedFile;

/// One entry of a safetensors header.
struct TensorInfo {
    std::string name;
    StoredDType dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0;  ///< byte offsets relative to the data section
    uint64_t end = 0;

    int64_t numel() const;
};

/// A memory-mapped safetensors file. The header is validated completely on open
/// (JSON object, known dtypes, non-negative shapes, offsets inside the data section,
/// sizes equal to shape × dtype size, no overlaps, no duplicate names): any problem is
/// a CheckpointError naming the file and tensor. `tensor()` returns zero-copy views that
/// keep the mapping alive; float8 tensors are decoded to float32 copies.
class SafetensorsFile {
public:
    static SafetensorsFile open(const std::filesystem::path& path);

    /// Entries sorted by name.
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const TensorInfo* find(const std::string& name) const;
    bool contains(const std::string& name) const { return find(name) != nullptr; }
    at::Tensor tensor(const std::string& name) const;
    const std::filesystem::path& path() const { return path_; }
    /// Size of the data section in bytes.
    uint64_t data_size() const { return data_size_; }

private:
    std::filesystem::path path_;
    std::shared_ptr<MappedFile> file_;
    uint64_t data_start_ = 0;
    uint64_t data_size_ = 0;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string, std::size_t> index_;
    std::map<std::string, std::string> metadata_;
};

/// Largest header this reader accepts (the reference implementation's limit).
constexpr uint64_t kMaxSafetensorsHeader = 100ull << 20;

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

/// Writes tensors (any device; copied to CPU, made contiguous) with `__metadata__`,
/// to a temporary file renamed over `path` when complete. Duplicate names or dtypes that
/// safetensors cannot hold are CheckpointErrors.
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// The sharded layout of Hugging Face / the official Wan release:
/// `<name>.safetensors.index.json` = {"metadata": {...}, "weight_map": {tensor: file}}.
struct ShardIndex {
    std::map<std::string, std::string> weight_map;
    std::map<std::string, std::string> metadata;  ///< string-valued entries only
    static ShardIndex read(const std::filesystem::path& index_json);
};

}  // namespace ipa::io
