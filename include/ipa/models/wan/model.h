#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <memory>
#include <vector>

#include "ipa/models/wan/attention_block.h"
#include "ipa/models/wan/config.h"

namespace ipa::models::wan {

/// Inputs of one DiT forward (batched; every sample has the same latent size).
struct WanInputs {
    torch::Tensor x;             ///< [B, in_dim, F, H, W] noisy latents (H, W divisible by the patch)
    torch::Tensor t;             ///< [B] timesteps in [0, 1000] (float)
    torch::Tensor context;       ///< [B, L, text_dim] text embeddings, L ≤ text_len (zero-padded)
    torch::Tensor vace_context;  ///< VACE: [B, vace_in_dim, F, H, W]
    int64_t seq_len = -1;        ///< token padding length (-1: the token count)
    double context_scale = 1.0;  ///< VACE hint multiplier
    torch::Tensor clip_fea;      ///< i2v/flf2v: [B, 257 (·2), 1280]
    torch::Tensor y;             ///< i2v/flf2v: conditioning latents concatenated to x on channels
};

/// What a forward computes from its inputs before the blocks — patch embedding, time
/// embedding and modulation, text embedding, RoPE, the padding mask — and optionally the
/// VACE hints and every main block's cross-attention keys/values. None of it depends on
/// adapters on main-block self-attention (IPA's QKV LoRA), so the reference and the policy
/// pass of a training step compute it once and get bitwise the same result.
struct WanPrelude {
    torch::Tensor tokens;  ///< [B, seq_len, D] patch-embedded, padded main tokens
    torch::Tensor e;       ///< [B, D] time embedding (for the head)
    BlockArgs args;
    std::array<int64_t, 3> grid{};
    int64_t seq_len = 0;
    int64_t batch = 0;
    bool has_hints = false;
    std::vector<torch::Tensor> hints;  ///< VACE hints (when has_hints)
    std::vector<CrossKV> cross_kv;     ///< per main block, or empty
};

/// What prelude() includes besides the embeddings.
struct PreludeOptions {
    bool hints = true;      ///< the VACE hints (not when an adapter sits in a VACE block)
    bool cross_kv = false;  ///< cross-attention K/V (not when an adapter sits on them)
};

/// The Wan 2.1 DiT velocity model. `named_parameters()` are the official checkpoint keys.
/// Numerics follow the reference (docs/wan-vace.md §3.11): in bf16 mode the GEMM/conv weights
/// are bf16 while time embedding, modulation, norms and head stay fp32, and the residual
/// stream is fp32 after the first block; in fp32 mode everything is fp32.
// ref: Wan2.1 wan/modules/model.py WanModel
struct WanModelImpl : torch::nn::Module {
    /// `init` places the freshly initialised parameters (e.g. directly on the GPU, or on
    /// the meta device to list keys and shapes without allocating).
    explicit WanModelImpl(WanConfig cfg, const torch::TensorOptions& init = {});
    virtual ~WanModelImpl() = default;

    /// -> velocity [B, out_dim, F, H, W] float32 (float64 for an fp64 model)
    torch::Tensor forward(const WanInputs& in);
    /// The part of forward() before the blocks (computed in the current grad mode).
    std::shared_ptr<const WanPrelude> prelude(const WanInputs& in, const PreludeOptions& options = {});
    /// forward() from a prelude of the same inputs (what it lacks is computed here).
    torch::Tensor forward(const WanInputs& in, const WanPrelude& prelude);

    /// Sets the compute dtype (fp32 or bf16) with the reference's fp32 islands.
    void set_dtype(c10::ScalarType dtype);
    c10::ScalarType dtype() const { return dtype_; }
    /// Whether the zero rows that pad the prompt to text_len are attended as one key with a
    /// log(count) score bias (default, fp32/fp64 only; exact up to rounding) or row by row
    /// as upstream does.
    void set_merge_text_padding(bool on) { merge_text_padding_ = on; }
    bool merge_text_padding() const { return merge_text_padding_; }
    /// Recompute each block in backward instead of storing its activations.
    void set_gradient_checkpointing(bool on) { grad_checkpointing_ = on; }
    bool gradient_checkpointing() const { return grad_checkpointing_; }
    const WanConfig& config() const { return cfg_; }

    /// Whether parameter `name` stays fp32 in bf16 mode.
    static bool keeps_fp32(const std::string& name);

    PatchEmbed patch_embedding{nullptr};
    torch::nn::Sequential text_embedding{nullptr};   // 0 Linear, 1 GELU(tanh), 2 Linear
    torch::nn::Sequential time_embedding{nullptr};   // 0 Linear, 1 SiLU, 2 Linear
    torch::nn::Sequential time_projection{nullptr};  // 0 SiLU, 1 Linear
    torch::nn::ModuleList blocks{nullptr};
    Head head{nullptr};
    MLPProj img_emb{nullptr};  // i2v / flf2v only

protected:
    /// VACE hints, one per entry of vace_layers (empty for the plain model).
    virtual std::vector<torch::Tensor> compute_hints(const WanInputs& in, const WanPrelude& p) { return {}; }
    /// Applies `block` with or without gradient checkpointing.
    torch::Tensor run_block(WanAttentionBlockImpl& block, const torch::Tensor& x, const BlockArgs& args,
                            const CrossKV* cross_kv = nullptr);
    torch::Tensor embed_tokens(PatchEmbed& embed, const torch::Tensor& video, int64_t seq_len);
    /// With merged text padding: how many leading context rows are kept as they are (the
    /// rest are all zero and become one row); -1 when the padding is attended row by row.
    int64_t merged_text_rows(const torch::Tensor& context) const;

    WanConfig cfg_;
    c10::ScalarType dtype_ = c10::kFloat;
    bool grad_checkpointing_ = false;
    bool merge_text_padding_ = true;

private:
    torch::Tensor unpatchify(const torch::Tensor& x, const std::array<int64_t, 3>& grid) const;
    void check_inputs(const WanInputs& in) const;
};
TORCH_MODULE(WanModel);

/// Wan + VACE: control tokens from `vace_context` run through `vace_blocks`; hint j is
/// added after main block vace_layers[j], times `context_scale`.
// ref: Wan2.1 wan/modules/vace_model.py VaceWanModel
struct VaceWanModelImpl : WanModelImpl {
    explicit VaceWanModelImpl(WanConfig cfg, const torch::TensorOptions& init = {});
    torch::nn::ModuleList vace_blocks{nullptr};
    PatchEmbed vace_patch_embedding{nullptr};

protected:
    std::vector<torch::Tensor> compute_hints(const WanInputs& in, const WanPrelude& p) override;
};
TORCH_MODULE(VaceWanModel);

/// Builds the right class for `cfg` (VaceWanModel when cfg.is_vace()).
std::shared_ptr<WanModelImpl> make_wan_model(const WanConfig& cfg, const torch::TensorOptions& init = {});

/// [cos(t·ω_k)…, sin(t·ω_k)…], ω_k = 10000^(−k/half), computed in float64 -> [B, dim] in
/// `dtype` (float32; float64 for an fp64 model).
// ref: Wan2.1 wan/modules/model.py sinusoidal_embedding_1d
torch::Tensor sinusoidal_embedding(int64_t dim, const torch::Tensor& t, c10::ScalarType dtype = c10::kFloat);

}  // namespace ipa::models::wan
