#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "ipa/io/state_dict.h"
#include "ipa/models/t5/config.h"
#include "ipa/models/t5/encoder.h"

namespace ipa::io {
class Checkpoint;
}

namespace ipa::models::t5 {

struct T5LoadOptions {
    /// Compute dtype of the encoder (bf16 as the reference, or fp32). Tensors stored in
    /// another dtype are converted once, at load.
    c10::ScalarType dtype = c10::kBFloat16;
    c10::Device device{c10::kCPU};
    /// Architecture; absent: detected from the tensor shapes.
    std::optional<T5Config> config;
};

/// Maps a Hugging Face `UMT5EncoderModel` / `T5EncoderModel` key to the Wan name
/// (docs/wan-vace.md §6.5): `shared.weight` / `encoder.embed_tokens.weight` ->
/// `token_embedding.weight`, `encoder.block.N.layer.0.SelfAttention.{q,k,v,o}` ->
/// `blocks.N.attn.*`, `…relative_attention_bias` -> `blocks.N.pos_embedding.embedding`
/// (the shared `pos_embedding.embedding` when `shared_pos`), `layer.0/1.layer_norm` ->
/// `norm1/norm2`, `DenseReluDense.wi_0/wi_1/wo` -> `ffn.gate.0/fc1/fc2`,
/// `encoder.final_layer_norm` -> `norm`. Wan names pass through unchanged; decoder and
/// `lm_head` keys map to nullopt (dropped). Unknown `encoder.` keys are returned as they
/// are, so a strict load reports them.
std::optional<std::string> t5_key_to_wan(const std::string& key, bool shared_pos = false);

/// Loads `ckpt` into `model` strictly (every missing, unexpected or mis-shaped tensor is
/// listed in one CheckpointError naming the file). Tensors whose dtype and device already
/// match the model become its parameters without a copy (zero-copy views of the mapped
/// file, kept alive by the tensors); others are converted straight into the model's
/// parameters. When both `shared.weight` and `encoder.embed_tokens.weight` are present
/// (tied HF weights) the first is used.
io::LoadReport load_t5_weights(T5EncoderImpl& model, const io::Checkpoint& ckpt);

/// Opens `path` (`models_t5_umt5-xxl-enc-bf16.pth`, a `.safetensors` file with Wan or HF
/// names, or a sharded HF directory), builds the encoder for the (detected) config on
/// `options.device` in `options.dtype` without initialising it, and loads it, logging
/// progress. CheckpointError naming the file for anything that does not fit.
std::shared_ptr<T5EncoderImpl> load_t5_encoder(const std::filesystem::path& path, const T5LoadOptions& options = {});

}  // namespace ipa::models::t5
