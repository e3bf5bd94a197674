#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipa/models/t5/config.h"
#include "ipa/models/t5/encoder.h"
#include "ipa/models/t5/tokenizer.h"

namespace ipa::models::t5 {

struct TextEncoderOptions {
    c10::Device device{c10::kCPU};
    c10::ScalarType dtype = c10::kBFloat16;  ///< bf16 as the reference, or fp32
    int64_t text_len = 512;
    /// Run the encoder on the ids cut to the longest prompt of the batch instead of all
    /// text_len positions. Padded keys get exactly zero attention weight (exp of finfo.min),
    /// so the kept rows are mathematically the same; only float summation order differs
    /// (measured within the fp32 floor in tests). false = upstream's full-length run.
    bool trim_padding = true;
    /// Architecture; absent: detected from the checkpoint.
    std::optional<T5Config> config;
};

/// Tokenizer + encoder: upstream `T5EncoderModel.__call__`.
// ref: Wan2.1 wan/modules/t5.py T5EncoderModel
class TextEncoder {
public:
    /// Loads `checkpoint` (see load_t5_encoder) and the tokenizer folder / spiece.model.
    TextEncoder(const std::filesystem::path& checkpoint, const std::filesystem::path& tokenizer,
                const TextEncoderOptions& options = {});
    TextEncoder(std::shared_ptr<T5EncoderImpl> model, T5Tokenizer tokenizer, const TextEncoderOptions& options = {});

    /// One tensor per prompt, [len_i, dim] in the encoder's dtype on its device, where
    /// len_i = pieces + EOS (≤ text_len): the encoder output trimmed to the true length.
    std::vector<at::Tensor> encode(const std::vector<std::string>& prompts);

    T5EncoderImpl& model() { return *model_; }
    const T5Tokenizer& tokenizer() const { return tokenizer_; }
    const TextEncoderOptions& options() const { return options_; }

private:
    /// ConfigError when the tokenizer can produce ids the embedding does not have.
    void check_vocab(const std::string& encoder_name) const;
    std::shared_ptr<T5EncoderImpl> model_;
    T5Tokenizer tokenizer_;
    TextEncoderOptions options_;
};

/// Reads precomputed text embeddings from a safetensors file written by
/// encode_prompts_to_file (or any file with the same layout):
///  - one prompt: `context` [L, dim];
///  - several: `context.0` … `context.{N-1}`, each [L_i, dim], and metadata `num_prompts`.
/// Checks every tensor: 2-D, floating (F32/BF16/F16), `dim` columns when `expected_dim` > 0,
/// 1 ≤ L ≤ `max_len`, all finite. DataError naming the file and key otherwise. Tensors are
/// returned in their stored dtype, in prompt order.
std::vector<at::Tensor> load_contexts_safetensors(const std::filesystem::path& path, int64_t expected_dim = 4096,
                                                  int64_t max_len = 512);
/// The single `context` [L, dim] of a one-prompt file (DataError if the file holds several).
at::Tensor load_context_safetensors(const std::filesystem::path& path, int64_t expected_dim = 4096,
                                    int64_t max_len = 512);

/// Loads the encoder and tokenizer, encodes each prompt on its own (as upstream encodes the
/// prompt and the negative prompt in separate calls), and writes `out_path` atomically in
/// the layout above, in the encoder's output dtype (bf16 for dtype bf16). Metadata:
/// `format` = "ipa.t5_context", `num_prompts`, `prompt.i` (the text), `length.i`,
/// `text_encoder`, `tokenizer`, `dtype`.
void encode_prompts_to_file(const std::filesystem::path& text_encoder_path, const std::filesystem::path& tokenizer_dir,
                            const std::vector<std::string>& prompts, const std::filesystem::path& out_path,
                            c10::Device device = c10::kCPU, c10::ScalarType dtype = c10::kBFloat16);

/// Writes already computed contexts (one per prompt) in the layout above.
void save_contexts_safetensors(const std::filesystem::path& out_path, const std::vector<std::string>& prompts,
                               const std::vector<at::Tensor>& contexts,
                               const std::map<std::string, std::string>& extra_metadata = {});

}  // namespace ipa::models::t5
