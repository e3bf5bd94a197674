#include "ipa/models/vae/loader.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>

#include "ipa/core/error.h"
#include "ipa/core/strings.h"
#include "ipa/io/checkpoint.h"
#include "ipa/models/vae/model.h"

namespace ipa::models::vae {
namespace {

bool replace_prefix(std::string& s, const std::string& from, const std::string& to) {
    if (!starts_with(s, from)) return false;
    s = to + s.substr(from.size());
    return true;
}

// "12.rest" -> (12, "rest"); false when `s` does not start with a number and a dot.
bool split_index(const std::string& s, int64_t& index, std::string& rest) {
    const auto dot = s.find('.');
    if (dot == 0 || dot == std::string::npos) return false;
    if (!std::all_of(s.begin(), s.begin() + dot, [](char c) { return c >= '0' && c <= '9'; })) return false;
    index = std::stoll(s.substr(0, dot));
    rest = s.substr(dot + 1);
    return true;
}

// diffusers WanResidualBlock -> original ResidualBlock (norm1 → residual.0, conv1 → residual.2,
// norm2 → residual.3, conv2 → residual.6, conv_shortcut → shortcut); other names unchanged.
std::string residual_names(std::string rest) {
    for (const auto& [from, to] : {std::pair<const char*, const char*>{"norm1.", "residual.0."},
                                   {"conv1.", "residual.2."},
                                   {"norm2.", "residual.3."},
                                   {"conv2.", "residual.6."},
                                   {"conv_shortcut.", "shortcut."}}) {
        if (replace_prefix(rest, from, to)) break;
    }
    return rest;
}

}  // namespace

VaeKeyMap::VaeKeyMap(const io::Checkpoint& ckpt) {
    const auto names = ckpt.names();
    bool found = false;
    for (const char* anchor :
         {"encoder.conv1.weight", "encoder.conv_in.weight", "decoder.conv1.weight", "decoder.conv_in.weight"}) {
        for (const auto& n : names) {
            if (!ends_with(n, anchor)) continue;
            const auto p = n.substr(0, n.size() - std::string(anchor).size());
            if (!p.empty() && p.back() != '.') continue;
            if (!found || p.size() < prefix_.size()) prefix_ = p;
            found = true;
        }
        if (found) break;
    }
    for (const auto& n : names) {
        if (!starts_with(n, prefix_)) continue;
        const auto k = n.substr(prefix_.size());
        if (k.find("conv_in.") != std::string::npos || k.find("mid_block.") != std::string::npos ||
            starts_with(k, "quant_conv.") || starts_with(k, "post_quant_conv.") ||
            k.find("down_blocks.") != std::string::npos || k.find("up_blocks.") != std::string::npos) {
            format_ = "diffusers";
        }
    }
    if (format_ == "diffusers") {
        // resnets per up block = 1 + the highest resnet index of up_blocks.0
        int64_t max_j = -1;
        for (const auto& n : names) {
            if (!starts_with(n, prefix_ + "decoder.up_blocks.0.resnets.")) continue;
            int64_t j = 0;
            std::string rest;
            if (split_index(n.substr(prefix_.size() + 28), j, rest)) max_j = std::max(max_j, j);
        }
        if (max_j >= 0) up_block_resnets_ = max_j + 1;
    }
}

std::optional<std::string> VaeKeyMap::operator()(const std::string& checkpoint_key) const {
    if (!starts_with(checkpoint_key, prefix_)) return std::nullopt;  // another component's key
    std::string key = checkpoint_key.substr(prefix_.size());
    if (format_ != "diffusers") return key;
    if (replace_prefix(key, "post_quant_conv.", "conv2.") || replace_prefix(key, "quant_conv.", "conv1.")) return key;
    for (const char* part : {"encoder.", "decoder."}) {
        if (!starts_with(key, part)) continue;
        const std::string head = part;
        std::string rest = key.substr(head.size());
        if (replace_prefix(rest, "conv_in.", "conv1.") || replace_prefix(rest, "norm_out.", "head.0.") ||
            replace_prefix(rest, "conv_out.", "head.2.")) {
            return head + rest;
        }
        int64_t i = 0, j = 0;
        std::string tail, tail2;
        if (replace_prefix(rest, "mid_block.attentions.0.", "")) return head + "middle.1." + rest;
        if (replace_prefix(rest, "mid_block.resnets.", "") && split_index(rest, i, tail)) {
            return head + fmt::format("middle.{}.", 2 * i) + residual_names(tail);
        }
        if (head == "encoder." && replace_prefix(rest, "down_blocks.", "") && split_index(rest, i, tail)) {
            return head + fmt::format("downsamples.{}.", i) + residual_names(tail);
        }
        if (head == "decoder." && replace_prefix(rest, "up_blocks.", "") && split_index(rest, i, tail)) {
            // up block i = resnets 0..R-1 then upsamplers.0 -> upsamples.{i·(R+1) + j}
            const int64_t stride = up_block_resnets_ + 1;
            if (replace_prefix(tail, "resnets.", "") && split_index(tail, j, tail2)) {
                return head + fmt::format("upsamples.{}.", i * stride + j) + residual_names(tail2);
            }
            if (replace_prefix(tail, "upsamplers.0.", "")) {
                return head + fmt::format("upsamples.{}.", i * stride + up_block_resnets_) + tail;
            }
        }
        return key;
    }
    return key;
}

io::LoadReport load_vae_weights(WanVAEImpl& model, const io::Checkpoint& ckpt, const VaeLoadOptions& options) {
    model.to(options.device);
    io::LoadOptions lo;
    lo.strict = options.strict;
    lo.dtype = options.dtype;
    const VaeKeyMap map(ckpt);
    lo.key_map = [&map](const std::string& k) { return map(k); };
    int64_t dropped = 0;
    for (const auto& n : ckpt.names()) dropped += map(n) ? 0 : 1;
    auto report = io::load_state_dict(model, ckpt, lo);
    spdlog::info("VAE: loaded {} tensors from {} ({} names{}{})", report.loaded.size(), ckpt.description(),
                 map.format(), map.prefix().empty() ? "" : fmt::format(", prefix '{}'", map.prefix()),
                 dropped ? fmt::format(", {} keys of other components ignored", dropped) : "");
    if (!report.ok()) spdlog::warn("non-strict VAE load of {}:\n{}", ckpt.description(), report.describe());
    return report;
}

std::shared_ptr<WanVAEImpl> load_wan_vae(const std::filesystem::path& path, c10::Device device, c10::ScalarType dtype,
                                         const std::optional<VaeConfig>& config) {
    if (dtype != c10::kFloat && dtype != c10::kBFloat16 && dtype != c10::kDouble) {
        throw ConfigError(
            fmt::format("VAE dtype {} is not supported (float32, bfloat16, float64)", c10::toString(dtype)));
    }
    const auto ckpt = io::Checkpoint::open(path);
    const auto cfg = config ? *config : VaeConfig::detect(ckpt);
    auto model = std::make_shared<WanVAEImpl>(cfg);
    VaeLoadOptions o;
    o.device = device;
    o.dtype = dtype;
    load_vae_weights(*model, ckpt, o);
    model->eval();
    return model;
}

}  // namespace ipa::models::vae
