#include "ipa/models/wan/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "ipa/core/config.h"
#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/config_json.h"
#include "ipa/models/wan/key_mapping.h"

namespace ipa::models::wan {

void WanConfig::validate() const {
    auto bad = [](const std::string& what) { throw ConfigError("model config: " + what); };
    static const std::set<std::string> types{"t2v", "i2v", "flf2v", "vace"};
    if (!types.count(model_type)) bad(fmt::format("model_type '{}' is not one of t2v, i2v, flf2v, vace", model_type));
    for (auto p : patch_size) {
        if (p < 1) bad(fmt::format("patch_size [{}] must be positive", fmt::join(patch_size, ", ")));
    }
    for (auto [name, v] : {std::pair<const char*, int64_t>{"text_len", text_len},
                           {"in_dim", in_dim},
                           {"dim", dim},
                           {"ffn_dim", ffn_dim},
                           {"freq_dim", freq_dim},
                           {"text_dim", text_dim},
                           {"out_dim", out_dim},
                           {"num_heads", num_heads},
                           {"num_layers", num_layers}}) {
        if (v < 1) bad(fmt::format("{} = {} must be positive", name, v));
    }
    if (dim % num_heads != 0) bad(fmt::format("dim {} is not divisible by num_heads {}", dim, num_heads));
    if (head_dim() % 2 != 0) bad(fmt::format("head dim {} (dim/num_heads) must be even for RoPE", head_dim()));
    if (head_dim() < 6) bad(fmt::format("head dim {} is too small for the 3-axis RoPE split", head_dim()));
    if (freq_dim % 2 != 0) bad(fmt::format("freq_dim {} must be even", freq_dim));
    if (!(eps > 0)) bad(fmt::format("eps {} must be positive", eps));
    if (is_vace()) {
        if (std::find(vace_layers.begin(), vace_layers.end(), 0) == vace_layers.end()) {
            bad(fmt::format("vace_layers [{}] must contain layer 0", fmt::join(vace_layers, ", ")));
        }
        std::set<int64_t> seen;
        for (auto l : vace_layers) {
            if (l < 0 || l >= num_layers) {
                bad(fmt::format("vace_layers entry {} is outside 0..{}", l, num_layers - 1));
            }
            if (!seen.insert(l).second) bad(fmt::format("vace_layers repeats layer {}", l));
        }
        if (vace_in_dim < 0) bad("vace_in_dim must be positive");
    } else if (model_type == "vace") {
        bad("model_type 'vace' needs vace_layers");
    }
}

WanConfig WanConfig::from_yaml(const ConfigReader& node) {
    WanConfig c;
    c.model_type = node.get_or<std::string>("model_type", c.model_type);
    if (node.has("patch_size")) {
        const auto p = node.get<std::vector<int64_t>>("patch_size");
        if (p.size() != 3) {
            throw ConfigError(fmt::format("config key '{}' ({}): expected 3 values [t, h, w], got {}",
                                          node.key_path("patch_size"), node.source(), p.size()));
        }
        c.patch_size = {p[0], p[1], p[2]};
    }
    c.text_len = node.get_or<int64_t>("text_len", c.text_len);
    c.in_dim = node.get_or<int64_t>("in_dim", c.in_dim);
    c.dim = node.get_or<int64_t>("dim", c.dim);
    c.ffn_dim = node.get_or<int64_t>("ffn_dim", c.ffn_dim);
    c.freq_dim = node.get_or<int64_t>("freq_dim", c.freq_dim);
    c.text_dim = node.get_or<int64_t>("text_dim", c.text_dim);
    c.out_dim = node.get_or<int64_t>("out_dim", c.out_dim);
    c.num_heads = node.get_or<int64_t>("num_heads", c.num_heads);
    c.num_layers = node.get_or<int64_t>("num_layers", c.num_layers);
    c.qk_norm = node.get_or<bool>("qk_norm", c.qk_norm);
    c.cross_attn_norm = node.get_or<bool>("cross_attn_norm", c.cross_attn_norm);
    c.eps = node.get_or<double>("eps", c.eps);
    c.vace_layers = node.get_or<std::vector<int64_t>>("vace_layers", {});
    c.vace_in_dim = node.get_or<int64_t>("vace_in_dim", 0);
    if (node.has("window_size")) {
        const auto w = node.get<std::vector<int64_t>>("window_size");
        if (w != std::vector<int64_t>{-1, -1}) {
            throw ConfigError(fmt::format("config key '{}': only global attention [-1, -1] is supported",
                                          node.key_path("window_size")));
        }
    }
    node.finish();
    if (c.is_vace() && c.vace_in_dim == 0) c.vace_in_dim = c.in_dim;
    try {
        c.validate();
    } catch (const ConfigError& e) {
        throw ConfigError(fmt::format("{} ({})", e.what(), node.source()));
    }
    return c;
}

WanConfig WanConfig::load(const std::filesystem::path& yaml_file) {
    return from_yaml(ConfigReader::load_file(yaml_file));
}

WanConfig WanConfig::preset(const std::string& name) {
    WanConfig c;
    c.text_len = 512;
    c.freq_dim = 256;
    c.text_dim = 4096;
    c.in_dim = c.out_dim = 16;
    if (name == "wan-t2v-1.3b" || name == "vace-1.3b") {
        c.dim = 1536;
        c.ffn_dim = 8960;
        c.num_heads = 12;
        c.num_layers = 30;
    } else if (name == "wan-t2v-14b" || name == "vace-14b") {
        c.dim = 5120;
        c.ffn_dim = 13824;
        c.num_heads = 40;
        c.num_layers = 40;
    } else if (name == "tiny") {
        c.dim = 40;  // head dim 20: uneven RoPE split like the real 128
        c.ffn_dim = 96;
        c.num_heads = 2;
        c.num_layers = 4;
        c.freq_dim = 32;
        c.text_dim = 32;
        c.text_len = 16;
        c.vace_layers = {0, 2};
        c.vace_in_dim = 96;
        c.model_type = "vace";
    } else {
        throw ConfigError(fmt::format(
            "unknown model preset '{}' (known: wan-t2v-1.3b, wan-t2v-14b, vace-1.3b, vace-14b, tiny)", name));
    }
    if (name == "vace-1.3b") {
        for (int64_t l = 0; l < 30; l += 2) c.vace_layers.push_back(l);
        c.vace_in_dim = 96;
        c.model_type = "vace";
    } else if (name == "vace-14b") {
        for (int64_t l = 0; l < 40; l += 5) c.vace_layers.push_back(l);
        c.vace_in_dim = 96;
        c.model_type = "vace";
    }
    c.validate();
    return c;
}

WanConfig WanConfig::resolve(const std::string& path_or_preset) {
    std::error_code ec;
    if (std::filesystem::exists(path_or_preset, ec)) return load(path_or_preset);
    if (path_or_preset.find('/') != std::string::npos || path_or_preset.find(".yaml") != std::string::npos) {
        throw ConfigError(fmt::format("model config '{}' does not exist", path_or_preset));
    }
    return preset(path_or_preset);
}

namespace {

// diffusers saves a transformer as a folder with config.json next to the shards. The tensor
// shapes give every size but the head count (and the exact vace_layers); config.json has
// them. Values it shares with the shapes must agree with them.
void apply_diffusers_config(WanConfig& c, const io::Checkpoint& ckpt) {
    const auto config = io::read_config_json(ckpt);
    if (!config) return;
    const auto& path = config->path;
    const auto& j = config->json;
    const auto cls = j.value("_class_name", std::string());
    if (cls != "WanTransformer3DModel" && cls != "WanVACETransformer3DModel") return;
    auto fail = [&](const std::string& what) {
        throw CheckpointError(fmt::format("'{}' ({}) does not match the weights: {}", path.string(), cls, what));
    };
    try {
        const int64_t heads = j.at("num_attention_heads").get<int64_t>();
        const int64_t head_dim = j.at("attention_head_dim").get<int64_t>();
        if (heads * head_dim != c.dim) {
            fail(fmt::format("num_attention_heads {} x attention_head_dim {} != dim {}", heads, head_dim, c.dim));
        }
        c.num_heads = heads;
        c.eps = j.value("eps", c.eps);
        if (j.contains("patch_size") && j["patch_size"].get<std::vector<int64_t>>() !=
                                            std::vector<int64_t>(c.patch_size.begin(), c.patch_size.end())) {
            fail(fmt::format("patch_size {}", j["patch_size"].dump()));
        }
        if (j.contains("qk_norm") && j["qk_norm"].is_null() == c.qk_norm) fail("qk_norm " + j["qk_norm"].dump());
        if (j.value("cross_attn_norm", c.cross_attn_norm) != c.cross_attn_norm) fail("cross_attn_norm");
        if (cls == "WanVACETransformer3DModel") {
            const auto layers = j.at("vace_layers").get<std::vector<int64_t>>();
            if (layers.size() != c.vace_layers.size()) {
                fail(fmt::format("{} vace_layers, {} vace_blocks", layers.size(), c.vace_layers.size()));
            }
            c.vace_layers = layers;
            if (j.value("vace_in_channels", c.vace_in_dim) != c.vace_in_dim) fail("vace_in_channels");
        }
    } catch (const nlohmann::json::exception& e) {
        throw CheckpointError(fmt::format("'{}' ({}): {}", path.string(), cls, e.what()));
    }
}

}  // namespace

WanConfig WanConfig::detect(const io::Checkpoint& ckpt) {
    // Any supported key spelling (diffusers, prefixed) is read under its original name.
    std::map<std::string, std::string> stored;  // original name -> name in the checkpoint
    for (const auto& name : ckpt.names()) {
        if (auto original = to_original_key(name)) stored.emplace(*original, name);
    }
    auto has = [&](const std::string& key) { return stored.count(key) > 0; };
    auto need = [&](const std::string& key) {
        if (!has(key)) {
            throw CheckpointError(
                fmt::format("cannot detect a Wan config from '{}': no '{}' (not a Wan "
                            "2.1 DiT in original or diffusers key names?)",
                            ckpt.description(), key));
        }
        return ckpt.shape(stored.at(key));
    };
    WanConfig c;
    const auto pe = need("patch_embedding.weight");  // [D, Cin, pt, ph, pw]
    if (pe.size() != 5) throw CheckpointError("patch_embedding.weight is not 5-D");
    c.dim = pe[0];
    c.in_dim = pe[1];
    c.patch_size = {pe[2], pe[3], pe[4]};
    c.ffn_dim = need("blocks.0.ffn.0.weight")[0];
    c.text_dim = need("text_embedding.0.weight")[1];
    c.freq_dim = need("time_embedding.0.weight")[1];
    c.out_dim = need("head.head.weight")[0] / (pe[2] * pe[3] * pe[4]);
    c.num_heads = std::max<int64_t>(1, c.dim / 128);
    int64_t layers = 0, vace = 0;
    for (const auto& [name, _] : stored) {
        auto index_after = [&](const std::string& prefix) -> int64_t {
            if (name.rfind(prefix, 0) != 0) return -1;
            return std::stoll(name.substr(prefix.size(), name.find('.', prefix.size()) - prefix.size()));
        };
        layers = std::max(layers, index_after("blocks.") + 1);
        vace = std::max(vace, index_after("vace_blocks.") + 1);
    }
    c.num_layers = layers;
    c.cross_attn_norm = has("blocks.0.norm3.weight");
    c.qk_norm = has("blocks.0.self_attn.norm_q.weight");
    if (has("img_emb.emb_pos"))
        c.model_type = "flf2v";
    else if (has("img_emb.proj.0.weight"))
        c.model_type = "i2v";
    if (vace > 0) {
        c.model_type = "vace";
        for (int64_t j = 0; j < vace; ++j) c.vace_layers.push_back(j * layers / vace);
        c.vace_in_dim = need("vace_patch_embedding.weight")[1];
    }
    apply_diffusers_config(c, ckpt);
    c.validate();
    return c;
}

std::string WanConfig::to_yaml() const {
    YAML::Emitter out;
    out << YAML::BeginMap;
    out << YAML::Key << "model_type" << YAML::Value << model_type;
    out << YAML::Key << "patch_size" << YAML::Value << YAML::Flow
        << std::vector<int64_t>(patch_size.begin(), patch_size.end());
    out << YAML::Key << "text_len" << YAML::Value << text_len;
    out << YAML::Key << "in_dim" << YAML::Value << in_dim;
    out << YAML::Key << "dim" << YAML::Value << dim;
    out << YAML::Key << "ffn_dim" << YAML::Value << ffn_dim;
    out << YAML::Key << "freq_dim" << YAML::Value << freq_dim;
    out << YAML::Key << "text_dim" << YAML::Value << text_dim;
    out << YAML::Key << "out_dim" << YAML::Value << out_dim;
    out << YAML::Key << "num_heads" << YAML::Value << num_heads;
    out << YAML::Key << "num_layers" << YAML::Value << num_layers;
    out << YAML::Key << "qk_norm" << YAML::Value << qk_norm;
    out << YAML::Key << "cross_attn_norm" << YAML::Value << cross_attn_norm;
    out << YAML::Key << "eps" << YAML::Value << eps;
    if (is_vace()) {
        out << YAML::Key << "vace_layers" << YAML::Value << YAML::Flow << vace_layers;
        out << YAML::Key << "vace_in_dim" << YAML::Value << vace_in_dim;
    }
    out << YAML::EndMap;
    return std::string(out.c_str()) + "\n";
}

bool WanConfig::operator==(const WanConfig& o) const {
    return model_type == o.model_type && patch_size == o.patch_size && text_len == o.text_len && in_dim == o.in_dim &&
           dim == o.dim && ffn_dim == o.ffn_dim && freq_dim == o.freq_dim && text_dim == o.text_dim &&
           out_dim == o.out_dim && num_heads == o.num_heads && num_layers == o.num_layers && qk_norm == o.qk_norm &&
           cross_attn_norm == o.cross_attn_norm && eps == o.eps && vace_layers == o.vace_layers &&
           vace_in_dim == o.vace_in_dim;
}

}  // namespace ipa::models::wan
