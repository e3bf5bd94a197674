#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ipa::io {

class MappedFile;

/// A PyTorch checkpoint in the zip format of `torch.save` (PyTorch ≥ 1.6), such as the
/// official `Wan2.1_VAE.pth` and `models_t5_umt5-xxl-enc-bf16.pth`.
///
/// `data.pkl` is read by a *restricted* unpickler: it knows only the globals a tensor
/// state dict needs (collections.OrderedDict, torch._utils._rebuild_tensor_v2,
/// torch._utils._rebuild_parameter, the torch.*Storage classes, …). Any other global is
/// refused with a CheckpointError naming it; loading never executes code.
///
/// Tensors are zero-copy views into the memory-mapped archive (storages are stored
/// uncompressed), keeping the mapping alive. Nested dicts are flattened with dots
/// (`{"model": {"w": t}}` → `model.w`); non-tensor leaves are listed in `skipped()`.
class PthFile {
public:
    static PthFile open(const std::filesystem::path& path);

    const std::vector<std::pair<std::string, at::Tensor>>& tensors() const { return tensors_; }
    /// Keys of values that were not tensors (ints, strings, None, …).
    const std::vector<std::string>& skipped() const { return skipped_; }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
    std::shared_ptr<MappedFile> file_;
    std::vector<std::pair<std::string, at::Tensor>> tensors_;
    std::vector<std::string> skipped_;
};

}  // namespace ipa::io
