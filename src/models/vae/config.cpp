#include "ipa/models/vae/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "ipa/core/config.h"
#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/config_json.h"
#include "ipa/models/vae/loader.h"

namespace ipa::models::vae {

const std::vector<double>& wan21_latent_mean() {
    // ref: Wan2.1 wan/modules/vae.py WanVAE.__init__
    static const std::vector<double> v{-0.7571, -0.7089, -0.9113, 0.1075,  -0.1745, 0.9653,  -0.1517, 1.5508,
                                       0.4134,  -0.0715, 0.5517,  -0.3632, -0.1922, -0.9497, 0.2503,  -0.2921};
    return v;
}

const std::vector<double>& wan21_latent_std() {
    static const std::vector<double> v{2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160};
    return v;
}

VaeConfig::VaeConfig() : latent_mean(wan21_latent_mean()), latent_std(wan21_latent_std()) {}

int64_t VaeConfig::temporal_stride() const {
    return int64_t{1} << std::count(temperal_downsample.begin(), temperal_downsample.end(), true);
}

int64_t VaeConfig::spatial_stride() const { return int64_t{1} << (dim_mult.size() - 1); }

void VaeConfig::validate() const {
    auto bad = [](const std::string& what) { throw ConfigError("vae config: " + what); };
    if (dim < 1) bad(fmt::format("dim = {} must be positive", dim));
    if (z_dim < 1) bad(fmt::format("z_dim = {} must be positive", z_dim));
    if (num_res_blocks < 1) bad(fmt::format("num_res_blocks = {} must be positive", num_res_blocks));
    if (dim_mult.size() < 2) bad(fmt::format("dim_mult [{}] needs at least 2 levels", fmt::join(dim_mult, ", ")));
    for (auto m : dim_mult) {
        if (m < 1) bad(fmt::format("dim_mult [{}] entries must be positive", fmt::join(dim_mult, ", ")));
    }
    // The decoder's up-samplers halve the channels: every level after the first must see
    // an even width (upstream's Resample(dim, 'upsample*') outputs dim // 2).
    for (std::size_t i = 1; i < dim_mult.size(); ++i) {
        if ((dim * dim_mult[i]) % 2 != 0)
            bad(fmt::format("dim · dim_mult[{}] = {} must be even", i, dim * dim_mult[i]));
    }
    if (temperal_downsample.size() != dim_mult.size() - 1) {
        bad(fmt::format("temperal_downsample has {} flags; dim_mult [{}] needs {} (one per level transition)",
                        temperal_downsample.size(), fmt::join(dim_mult, ", "), dim_mult.size() - 1));
    }
    for (double s : attn_scales) {
        const double l = -std::log2(s);
        if (!(s > 0) || std::abs(l - std::round(l)) > 1e-9 || l > double(dim_mult.size() - 1)) {
            bad(fmt::format("attn_scales entry {} is not one of 1, 1/2, …, 1/2^{}", s, dim_mult.size() - 1));
        }
    }
    if (latent_mean.size() != static_cast<std::size_t>(z_dim) || latent_std.size() != static_cast<std::size_t>(z_dim)) {
        bad(
            fmt::format("latent_mean/latent_std have {}/{} values, z_dim is {} (give both for a VAE that is not "
                        "Wan 2.1's)",
                        latent_mean.size(), latent_std.size(), z_dim));
    }
    for (double s : latent_std) {
        if (!(s > 0)) bad(fmt::format("latent_std entry {} must be positive", s));
    }
}

VaeConfig VaeConfig::from_yaml(const ConfigReader& node) {
    VaeConfig c;
    c.dim = node.get_or<int64_t>("dim", c.dim);
    c.z_dim = node.get_or<int64_t>("z_dim", c.z_dim);
    c.dim_mult = node.get_or<std::vector<int64_t>>("dim_mult", c.dim_mult);
    c.num_res_blocks = node.get_or<int64_t>("num_res_blocks", c.num_res_blocks);
    c.attn_scales = node.get_or<std::vector<double>>("attn_scales", c.attn_scales);
    if (node.has("temperal_downsample")) {
        node.mark_used("temperal_downsample");
        const auto n = node.node()["temperal_downsample"];
        std::vector<bool> flags;
        try {
            if (!n.IsSequence()) throw YAML::Exception(n.Mark(), "not a sequence");
            for (const auto& e : n) flags.push_back(e.as<bool>());
        } catch (const YAML::Exception&) {
            throw ConfigError(
                fmt::format("config key '{}' ({}): expected a list of booleans such as "
                            "[false, true, true]",
                            node.key_path("temperal_downsample"), node.source()));
        }
        c.temperal_downsample = flags;
    }
    const bool default_stats = c.z_dim == 16;
    c.latent_mean =
        node.get_or<std::vector<double>>("latent_mean", default_stats ? c.latent_mean : std::vector<double>{});
    c.latent_std = node.get_or<std::vector<double>>("latent_std", default_stats ? c.latent_std : std::vector<double>{});
    node.finish();
    try {
        c.validate();
    } catch (const ConfigError& e) {
        throw ConfigError(fmt::format("{} ({})", e.what(), node.source()));
    }
    return c;
}

VaeConfig VaeConfig::load(const std::filesystem::path& yaml_file) {
    return from_yaml(ConfigReader::load_file(yaml_file));
}

VaeConfig VaeConfig::preset(const std::string& name) {
    VaeConfig c;
    if (name == "wan2.1" || name == "wan2.1-vae") {
        // defaults
    } else if (name == "tiny") {
        c.dim = 4;
    } else {
        throw ConfigError(fmt::format("unknown VAE preset '{}' (known: wan2.1, tiny)", name));
    }
    c.validate();
    return c;
}

namespace {

// diffusers saves AutoencoderKLWan as a folder with config.json next to the weights. The
// shapes give the architecture; config.json adds the latent statistics (latents_mean /
// latents_std, any z_dim) and names the variants this VAE does not implement. Returns false
// when there is no AutoencoderKLWan config.json next to the checkpoint's files.
bool apply_diffusers_config(VaeConfig& c, const io::Checkpoint& ckpt) {
    const auto config = io::read_config_json(ckpt);
    if (!config) return false;
    const auto& path = config->path;
    const auto& j = config->json;
    if (j.value("_class_name", std::string()) != "AutoencoderKLWan") return false;
    auto fail = [&](const std::string& what) {
        throw CheckpointError(fmt::format("'{}' (AutoencoderKLWan): {}", path.string(), what));
    };
    try {
        // Wan 2.2-style variants: residual blocks with avg/dup shortcuts, patchified input.
        if (j.value("is_residual", false)) fail("is_residual true (Wan 2.2 VAE) is not supported");
        if (j.contains("patch_size") && !j["patch_size"].is_null()) fail("patch_size " + j["patch_size"].dump());
        if (j.contains("decoder_base_dim") && !j["decoder_base_dim"].is_null() &&
            j["decoder_base_dim"].get<int64_t>() != c.dim) {
            fail(fmt::format("decoder_base_dim {} != base_dim {}", j["decoder_base_dim"].dump(), c.dim));
        }
        if (j.value("in_channels", 3) != 3 || j.value("out_channels", 3) != 3) fail("in/out_channels must be 3");
        // diffusers' decoder has no attention in its up blocks: attn_scales would differ from Wan.
        if (!j.value("attn_scales", std::vector<double>{}).empty()) {
            fail("attn_scales " + j["attn_scales"].dump() + ": diffusers' decoder omits the up-block attention");
        }
        if (j.value("base_dim", c.dim) != c.dim)
            fail(fmt::format("base_dim {} != weights' {}", j["base_dim"].dump(), c.dim));
        if (j.value("z_dim", c.z_dim) != c.z_dim)
            fail(fmt::format("z_dim {} != weights' {}", j["z_dim"].dump(), c.z_dim));
        if (j.value("dim_mult", c.dim_mult) != c.dim_mult) fail("dim_mult " + j["dim_mult"].dump() + " != weights'");
        if (j.value("num_res_blocks", c.num_res_blocks) != c.num_res_blocks) fail("num_res_blocks != weights'");
        if (j.value("temperal_downsample", c.temperal_downsample) != c.temperal_downsample) {
            fail("temperal_downsample " + j["temperal_downsample"].dump() + " != weights'");
        }
        if (j.contains("latents_mean")) c.latent_mean = j["latents_mean"].get<std::vector<double>>();
        if (j.contains("latents_std")) c.latent_std = j["latents_std"].get<std::vector<double>>();
        if (c.latent_mean.size() != static_cast<std::size_t>(c.z_dim) ||
            c.latent_std.size() != static_cast<std::size_t>(c.z_dim)) {
            fail(fmt::format("latents_mean/latents_std have {}/{} values, z_dim is {}", c.latent_mean.size(),
                             c.latent_std.size(), c.z_dim));
        }
    } catch (const nlohmann::json::exception& e) {
        fail(e.what());
    }
    return true;
}

}  // namespace

VaeConfig VaeConfig::detect(const io::Checkpoint& ckpt) {
    const VaeKeyMap map(ckpt);
    std::map<std::string, std::vector<int64_t>> shapes;  // original names
    for (const auto& name : ckpt.names()) {
        if (auto k = map(name)) shapes[*k] = ckpt.shape(name);
    }
    auto need = [&](const std::string& key) -> const std::vector<int64_t>& {
        auto it = shapes.find(key);
        if (it == shapes.end()) {
            throw CheckpointError(
                fmt::format("cannot detect a Wan VAE config from '{}': no tensor '{}' (not a "
                            "Wan 2.1 VAE?)",
                            ckpt.description(), key));
        }
        return it->second;
    };
    VaeConfig c;
    c.dim = need("encoder.conv1.weight").at(0);
    c.z_dim = need("conv2.weight").at(0);
    // Walk encoder.downsamples.N: residual blocks (residual.2), attention (to_qkv) and
    // resamples (resample.1, with time_conv when temporal) in index order.
    c.dim_mult.clear();
    c.temperal_downsample.clear();
    c.attn_scales.clear();
    int64_t level_blocks = 0, level_out = 0;
    bool level_attn = false;
    std::vector<int64_t> blocks_per_level;
    auto close_level = [&]() {
        if (level_out % c.dim != 0) {
            throw CheckpointError(fmt::format("'{}': encoder level width {} is not a multiple of dim {}",
                                              ckpt.description(), level_out, c.dim));
        }
        c.dim_mult.push_back(level_out / c.dim);
        if (level_attn) c.attn_scales.push_back(1.0 / double(int64_t{1} << (c.dim_mult.size() - 1)));
        blocks_per_level.push_back(level_blocks);
        level_blocks = 0;
        level_attn = false;
    };
    for (int64_t i = 0;; ++i) {
        const std::string p = fmt::format("encoder.downsamples.{}.", i);
        if (shapes.count(p + "residual.2.weight")) {
            level_out = shapes[p + "residual.2.weight"].at(0);
            ++level_blocks;
        } else if (shapes.count(p + "to_qkv.weight")) {
            level_attn = true;
        } else if (shapes.count(p + "resample.1.weight")) {
            close_level();
            c.temperal_downsample.push_back(shapes.count(p + "time_conv.weight") > 0);
        } else {
            break;
        }
    }
    if (level_blocks == 0) {
        throw CheckpointError(
            fmt::format("cannot detect a Wan VAE config from '{}': encoder.downsamples has no "
                        "residual blocks after the last resample",
                        ckpt.description()));
    }
    close_level();
    c.num_res_blocks = blocks_per_level.front();
    for (auto b : blocks_per_level) {
        if (b != c.num_res_blocks) {
            throw CheckpointError(fmt::format("'{}': encoder levels have different numbers of residual blocks ({})",
                                              ckpt.description(), fmt::join(blocks_per_level, ", ")));
        }
    }
    const bool diffusers_stats = apply_diffusers_config(c, ckpt);
    if (!diffusers_stats && c.z_dim != 16) {
        throw CheckpointError(
            fmt::format("'{}': z_dim {} — the latent statistics are only known for Wan 2.1's "
                        "z_dim 16; give a YAML config with latent_mean/latent_std",
                        ckpt.description(), c.z_dim));
    }
    try {
        c.validate();
    } catch (const ConfigError& e) {
        throw CheckpointError(
            fmt::format("'{}': detected VAE config is inconsistent: {}", ckpt.description(), e.what()));
    }
    return c;
}

std::string VaeConfig::to_yaml() const {
    YAML::Emitter out;
    out << YAML::BeginMap;
    out << YAML::Key << "dim" << YAML::Value << dim;
    out << YAML::Key << "z_dim" << YAML::Value << z_dim;
    out << YAML::Key << "dim_mult" << YAML::Value << YAML::Flow << dim_mult;
    out << YAML::Key << "num_res_blocks" << YAML::Value << num_res_blocks;
    out << YAML::Key << "attn_scales" << YAML::Value << YAML::Flow << attn_scales;
    out << YAML::Key << "temperal_downsample" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (bool b : temperal_downsample) out << b;
    out << YAML::EndSeq;
    out << YAML::Key << "latent_mean" << YAML::Value << YAML::Flow << latent_mean;
    out << YAML::Key << "latent_std" << YAML::Value << YAML::Flow << latent_std;
    out << YAML::EndMap;
    return std::string(out.c_str()) + "\n";
}

bool VaeConfig::operator==(const VaeConfig& o) const {
    return dim == o.dim && z_dim == o.z_dim && dim_mult == o.dim_mult && num_res_blocks == o.num_res_blocks &&
           attn_scales == o.attn_scales && temperal_downsample == o.temperal_downsample &&
           latent_mean == o.latent_mean && latent_std == o.latent_std;
}

}  // namespace ipa::models::vae
