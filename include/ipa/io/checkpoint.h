#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ipa/io/safetensors.h"

namespace ipa::io {

class PthFile;

/// Name, stored dtype and shape of one tensor of a checkpoint, and the file it is in.
struct TensorMeta {
    std::string name;
    std::string dtype;  ///< stored dtype as the file spells it ("BF16", "F32", …)
    std::vector<int64_t> shape;
    std::string file;
    int64_t numel() const;
    uint64_t nbytes() const;  ///< stored size
};

/// A read-only set of named tensors from any supported checkpoint layout:
///  - a `.safetensors` file;
///  - a sharded checkpoint: its `*.safetensors.index.json`, or a directory holding one
///    (the official Wan release), or a directory of `.safetensors` files;
///  - a PyTorch zip checkpoint (`.pth`, `.pt`, `.bin`, `.ckpt`), via the restricted reader;
///  - tensors already in memory (`from_tensors`).
/// Tensor names must be unique across shards. Errors are CheckpointErrors naming the path.
class Checkpoint {
public:
    static Checkpoint open(const std::filesystem::path& path);
    static Checkpoint from_tensors(NamedTensors tensors, std::string description = "<memory>");

    Checkpoint(Checkpoint&&) noexcept;
    Checkpoint& operator=(Checkpoint&&) noexcept;
    ~Checkpoint();

    /// Entries sorted by name.
    std::vector<TensorMeta> entries() const;
    std::vector<std::string> names() const;
    bool contains(const std::string& name) const { return where_.count(name) > 0; }
    std::size_t size() const { return where_.size(); }
    /// The tensor in its loaded dtype (a zero-copy view of the mapped file where possible).
    at::Tensor get(const std::string& name) const;
    std::vector<int64_t> shape(const std::string& name) const;
    /// `__metadata__` of safetensors (merged over shards) or a shard index's metadata.
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::string& description() const { return description_; }
    /// The files this checkpoint was read from.
    std::vector<std::filesystem::path> files() const;

private:
    Checkpoint();
    struct Where {
        int source;     ///< index into shards_, or -1 for the pth/in-memory table
        std::size_t i;  ///< index in memory_ when source == -1
    };
    void add_shard(SafetensorsFile shard, const std::filesystem::path& origin);

    std::string description_;
    std::vector<SafetensorsFile> shards_;
    std::unique_ptr<PthFile> pth_;
    NamedTensors memory_;
    std::unordered_map<std::string, Where> where_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace ipa::io
