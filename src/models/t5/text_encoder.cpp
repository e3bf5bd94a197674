#include "ipa/models/t5/text_encoder.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>

#include "ipa/core/error.h"
#include "ipa/io/safetensors.h"
#include "ipa/models/t5/loader.h"

namespace ipa::models::t5 {
namespace fs = std::filesystem;

TextEncoder::TextEncoder(const fs::path& checkpoint, const fs::path& tokenizer, const TextEncoderOptions& options)
    : tokenizer_(T5Tokenizer::load(tokenizer, options.text_len)), options_(options) {
    T5LoadOptions lo;
    lo.device = options.device;
    lo.dtype = options.dtype;
    lo.config = options.config;
    model_ = load_t5_encoder(checkpoint, lo);
    check_vocab(checkpoint.string());
}

TextEncoder::TextEncoder(std::shared_ptr<T5EncoderImpl> model, T5Tokenizer tokenizer, const TextEncoderOptions& options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), options_(options) {
    TORCH_CHECK(model_, "TextEncoder: no model");
    check_vocab("<in-memory encoder>");
}

void TextEncoder::check_vocab(const std::string& encoder_name) const {
    if (tokenizer_.vocab_size() > model_->config().vocab) {
        throw ConfigError(fmt::format("tokenizer '{}' has {} pieces but the encoder '{}' embeds only {} ids",
                                      tokenizer_.model_path().string(), tokenizer_.vocab_size(), encoder_name,
                                      model_->config().vocab));
    }
}

std::vector<torch::Tensor> TextEncoder::encode(const std::vector<std::string>& prompts) {
    // ids/mask [B, text_len] -> (optionally cut to the longest prompt) -> encoder [B, L, D] -> [len_i, D] each
    if (prompts.empty()) return {};
    torch::NoGradGuard no_grad;
    auto batch = tokenizer_(prompts);
    auto ids = batch.ids;
    auto mask = batch.mask;
    if (options_.trim_padding) {
        const int64_t longest = *std::max_element(batch.lengths.begin(), batch.lengths.end());
        ids = ids.narrow(1, 0, longest);
        mask = mask.narrow(1, 0, longest);
    }
    const auto context = model_->forward(ids, mask);
    std::vector<torch::Tensor> out;
    out.reserve(prompts.size());
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        out.push_back(context[static_cast<int64_t>(i)].narrow(0, 0, batch.lengths[i]).contiguous());
    }
    return out;
}

namespace {

torch::Tensor checked_context(const io::SafetensorsFile& f, const std::string& key, int64_t expected_dim,
                              int64_t max_len) {
    const auto& path = f.path().string();
    const auto* info = f.find(key);
    if (!info) {
        throw DataError(
            fmt::format("context file '{}' has no tensor '{}'; expected 'context' [L, dim] (one prompt) "
                        "or 'context.0'..'context.N-1' (written by encode_prompts_to_file)",
                        path, key));
    }
    auto t = f.tensor(key);
    if (!(t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf)) {
        throw DataError(fmt::format("context file '{}': '{}' has dtype {}, expected F32, BF16 or F16", path, key,
                                    c10::toString(t.scalar_type())));
    }
    if (t.dim() != 2) {
        throw DataError(fmt::format("context file '{}': '{}' has shape {}, expected [L, dim]", path, key,
                                    fmt::join(t.sizes(), "x")));
    }
    if (expected_dim > 0 && t.size(1) != expected_dim) {
        throw DataError(fmt::format("context file '{}': '{}' has {} columns, the model expects dim {} (umT5-XXL: 4096)",
                                    path, key, t.size(1), expected_dim));
    }
    if (t.size(0) < 1 || t.size(0) > max_len) {
        throw DataError(fmt::format("context file '{}': '{}' has {} rows, expected 1..{} (tokens incl. EOS)", path, key,
                                    t.size(0), max_len));
    }
    if (!torch::isfinite(t).all().item<bool>()) {
        throw DataError(fmt::format("context file '{}': '{}' contains NaN or Inf", path, key));
    }
    return t;
}

}  // namespace

std::vector<torch::Tensor> load_contexts_safetensors(const fs::path& path, int64_t expected_dim, int64_t max_len) {
    if (!fs::exists(path)) {
        throw DataError(
            fmt::format("context file '{}' does not exist (make it with encode_prompts_to_file)", path.string()));
    }
    io::SafetensorsFile f = [&] {
        try {
            return io::SafetensorsFile::open(path);
        } catch (const CheckpointError& e) {
            throw DataError(
                fmt::format("context file '{}' is not a readable safetensors file: {}", path.string(), e.what()));
        }
    }();
    if (f.contains("context")) {
        if (f.tensors().size() != 1) {
            throw DataError(
                fmt::format("context file '{}' has 'context' and {} other tensors; expected only 'context' "
                            "or only 'context.0'..'context.N-1'",
                            path.string(), f.tensors().size() - 1));
        }
        return {checked_context(f, "context", expected_dim, max_len)};
    }
    const auto n = static_cast<int64_t>(f.tensors().size());
    const auto& meta = f.metadata();
    if (auto it = meta.find("num_prompts"); it != meta.end() && it->second != std::to_string(n)) {
        throw DataError(fmt::format("context file '{}': metadata num_prompts = {} but it holds {} tensors",
                                    path.string(), it->second, n));
    }
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < std::max<int64_t>(n, 1); ++i) {
        out.push_back(checked_context(f, fmt::format("context.{}", i), expected_dim, max_len));
    }
    return out;
}

torch::Tensor load_context_safetensors(const fs::path& path, int64_t expected_dim, int64_t max_len) {
    auto all = load_contexts_safetensors(path, expected_dim, max_len);
    if (all.size() != 1) {
        throw DataError(
            fmt::format("context file '{}' holds {} prompts; expected one ('context')", path.string(), all.size()));
    }
    return all[0];
}

void save_contexts_safetensors(const fs::path& out_path, const std::vector<std::string>& prompts,
                               const std::vector<torch::Tensor>& contexts,
                               const std::map<std::string, std::string>& extra_metadata) {
    TORCH_CHECK(prompts.size() == contexts.size(), "save_contexts_safetensors: ", prompts.size(), " prompts but ",
                contexts.size(), " contexts");
    if (contexts.empty()) throw DataError(fmt::format("no prompts to write to '{}'", out_path.string()));
    io::NamedTensors tensors;
    std::map<std::string, std::string> meta = extra_metadata;
    meta["format"] = "ipa.t5_context";
    meta["num_prompts"] = std::to_string(contexts.size());
    for (std::size_t i = 0; i < contexts.size(); ++i) {
        const auto key = contexts.size() == 1 ? std::string("context") : fmt::format("context.{}", i);
        tensors.emplace_back(key, contexts[i].detach().to(torch::kCPU).contiguous());
        meta[fmt::format("prompt.{}", i)] = prompts[i];
        meta[fmt::format("length.{}", i)] = std::to_string(contexts[i].size(0));
    }
    io::save_safetensors(out_path, tensors, meta);
}

void encode_prompts_to_file(const fs::path& text_encoder_path, const fs::path& tokenizer_dir,
                            const std::vector<std::string>& prompts, const fs::path& out_path, c10::Device device,
                            c10::ScalarType dtype) {
    if (prompts.empty()) throw DataError(fmt::format("no prompts given for '{}'", out_path.string()));
    TextEncoderOptions options;
    options.device = device;
    options.dtype = dtype;
    TextEncoder encoder(text_encoder_path, tokenizer_dir, options);
    std::vector<torch::Tensor> contexts;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        contexts.push_back(encoder.encode({prompts[i]})[0]);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        spdlog::info("encoded prompt {}/{}: {} tokens in {:.1f} s", i + 1, prompts.size(), contexts.back().size(0), s);
    }
    save_contexts_safetensors(out_path, prompts, contexts,
                              {{"text_encoder", text_encoder_path.string()},
                               {"tokenizer", tokenizer_dir.string()},
                               {"dtype", c10::toString(dtype)}});
    spdlog::info("wrote {} text context(s) to {}", contexts.size(), out_path.string());
}

}  // namespace ipa::models::t5
