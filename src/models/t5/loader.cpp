#include "ipa/models/t5/loader.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <regex>
#include <unordered_map>

#include "ipa/core/error.h"
#include "ipa/core/progress.h"
#include "ipa/io/checkpoint.h"

namespace ipa::models::t5 {

std::optional<std::string> t5_key_to_wan(const std::string& key, bool shared_pos) {
    if (key.rfind("decoder.", 0) == 0 || key.rfind("lm_head.", 0) == 0) return std::nullopt;
    if (key == "shared.weight" || key == "encoder.embed_tokens.weight") return std::string("token_embedding.weight");
    if (key == "encoder.final_layer_norm.weight") return std::string("norm.weight");
    static const std::regex block_re(R"(^encoder\.block\.(\d+)\.layer\.([01])\.(.+)$)");
    std::smatch m;
    if (!std::regex_match(key, m, block_re)) return key;  // Wan names, or unknown keys for the strict report
    const std::string i = m[1];
    const std::string rest = m[3];
    if (m[2] == "0") {
        if (rest == "layer_norm.weight") return "blocks." + i + ".norm1.weight";
        if (rest == "SelfAttention.relative_attention_bias.weight") {
            return shared_pos ? std::string("pos_embedding.embedding.weight")
                              : "blocks." + i + ".pos_embedding.embedding.weight";
        }
        for (const char* p : {"q", "k", "v", "o"}) {
            if (rest == fmt::format("SelfAttention.{}.weight", p)) return fmt::format("blocks.{}.attn.{}.weight", i, p);
        }
    } else {
        if (rest == "layer_norm.weight") return "blocks." + i + ".norm2.weight";
        if (rest == "DenseReluDense.wi_0.weight") return "blocks." + i + ".ffn.gate.0.weight";
        if (rest == "DenseReluDense.wi_1.weight") return "blocks." + i + ".ffn.fc1.weight";
        if (rest == "DenseReluDense.wo.weight") return "blocks." + i + ".ffn.fc2.weight";
    }
    return key;
}

io::LoadReport load_t5_weights(T5EncoderImpl& model, const io::Checkpoint& ckpt) {
    torch::NoGradGuard no_grad;
    const bool shared_pos = model.config().shared_pos;
    const bool tied = ckpt.contains("shared.weight") && ckpt.contains("encoder.embed_tokens.weight");
    std::unordered_map<std::string, std::string> source;  // module key -> checkpoint key
    io::LoadOptions lo;
    lo.strict = true;
    lo.dry_run = true;  // names and shapes only: the tensors are placed below, without a copy where possible
    lo.key_map = [&](const std::string& k) -> std::optional<std::string> {
        if (tied && k == "encoder.embed_tokens.weight") return std::nullopt;
        auto mapped = t5_key_to_wan(k, shared_pos);
        if (mapped) source.emplace(*mapped, k);
        return mapped;
    };
    auto report = io::load_state_dict(model, ckpt, lo);  // throws CheckpointError listing every problem

    const auto params = model.named_parameters(/*recurse=*/true);
    ipa::ProgressOptions po;
    po.unit = "tensor";
    ipa::Progress progress("loading T5 encoder", static_cast<int64_t>(params.size()), po);
    int64_t zero_copy = 0;
    for (const auto& p : params) {
        auto target = p.value();
        const auto& ck_key = source.at(p.key());
        auto src = ckpt.get(ck_key);
        if (src.scalar_type() == target.scalar_type() && src.device() == target.device() && !target.is_meta()) {
            target.set_data(src);  // the mapped file's pages become the parameter
            ++zero_copy;
        } else {
            target.copy_(src);
        }
        progress.advance();
    }
    progress.finish();
    spdlog::info("T5 encoder: {} tensors from {} ({} zero-copy, {} converted to {} on {})", params.size(),
                 ckpt.description(), zero_copy, static_cast<int64_t>(params.size()) - zero_copy,
                 c10::toString(model.dtype()), model.device().str());
    return report;
}

std::shared_ptr<T5EncoderImpl> load_t5_encoder(const std::filesystem::path& path, const T5LoadOptions& options) {
    if (options.dtype != c10::kBFloat16 && options.dtype != c10::kFloat && options.dtype != c10::kHalf) {
        throw ConfigError(
            fmt::format("T5 encoder dtype {} is not supported (bf16, fp16 or fp32)", c10::toString(options.dtype)));
    }
    if (!std::filesystem::exists(path)) {
        throw CheckpointError(
            fmt::format("T5 encoder checkpoint '{}' does not exist (expected "
                        "models_t5_umt5-xxl-enc-bf16.pth or a .safetensors file)",
                        path.string()));
    }
    const auto t0 = std::chrono::steady_clock::now();
    spdlog::info("opening T5 encoder {}", path.string());
    const auto ckpt = io::Checkpoint::open(path);
    const auto cfg = options.config ? *options.config : T5Config::detect(ckpt);
    spdlog::info("T5 encoder: {}", cfg.describe());
    auto model = std::make_shared<T5EncoderImpl>(
        cfg, torch::TensorOptions().dtype(options.dtype).device(options.device), /*initialize=*/false);
    load_t5_weights(*model, ckpt);
    model->eval();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("T5 encoder ready in {:.1f} s", s);
    return model;
}

}  // namespace ipa::models::t5
