#pragma once

#include <cstdint>
#include <string>

namespace ipa::io {
class Checkpoint;
}

namespace ipa::models::t5 {

/// Architecture of a T5 encoder as Wan builds it (`wan/modules/t5.py` `T5Encoder`).
/// Field names are the upstream constructor argument names; the defaults are umT5-XXL
/// (`umt5_xxl(encoder_only=True)`).
struct T5Config {
    int64_t vocab = 256384;   ///< embedding rows (the tokenizer has fewer pieces; the rest is padding)
    int64_t dim = 4096;       ///< d_model
    int64_t dim_attn = 4096;  ///< q/k/v width = num_heads × head_dim
    int64_t dim_ffn = 10240;  ///< gated-GELU hidden width
    int64_t num_heads = 64;
    int64_t num_layers = 24;
    int64_t num_buckets = 32;  ///< relative-position buckets (half per direction)
    int64_t max_dist = 128;    ///< distance where the log buckets saturate
    bool shared_pos = false;   ///< false: one relative embedding per layer (umT5); true: one for all (T5)
    double eps = 1e-6;         ///< T5LayerNorm epsilon

    int64_t head_dim() const { return dim_attn / num_heads; }

    /// ConfigError naming the field for any inconsistent value.
    void validate() const;
    /// umT5-XXL, the Wan 2.1 text encoder.
    static T5Config umt5_xxl();
    /// 2 layers, dim 32, 4 heads, ffn 48, vocab 608: the parity-test model (spiece fixture: 600 pieces).
    static T5Config tiny();
    /// "umt5-xxl" or "tiny"; ConfigError otherwise.
    static T5Config preset(const std::string& name);
    /// Infers the architecture from tensor shapes (Wan or Hugging Face UMT5 names):
    /// num_heads from the relative embedding [buckets, heads]; with Hugging Face names, a
    /// transformers `config.json` next to the files adds `relative_attention_max_distance`
    /// and `layer_norm_epsilon` (and must agree with the shapes). CheckpointError naming the
    /// file if the tensors are not a T5 encoder.
    static T5Config detect(const io::Checkpoint& ckpt);

    std::string describe() const;
    bool operator==(const T5Config& o) const;
};

}  // namespace ipa::models::t5
