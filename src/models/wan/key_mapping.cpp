#include "ipa/models/wan/key_mapping.h"

#include <utility>
#include <vector>

#include "ipa/core/strings.h"
#include "ipa/io/checkpoint.h"

namespace ipa::models::wan {
namespace {

bool replace_prefix(std::string& s, const std::string& from, const std::string& to) {
    if (!starts_with(s, from)) return false;
    s = to + s.substr(from.size());
    return true;
}

// Splits "blocks.12.attn1.to_q.weight" into ("blocks.12.", "attn1.to_q.weight").
bool split_block(const std::string& key, std::string& head, std::string& rest) {
    for (const char* prefix : {"blocks.", "vace_blocks."}) {
        if (!starts_with(key, prefix)) continue;
        const auto dot = key.find('.', std::string(prefix).size());
        if (dot == std::string::npos) return false;
        head = key.substr(0, dot + 1);
        rest = key.substr(dot + 1);
        return true;
    }
    return false;
}

const std::vector<std::pair<std::string, std::string>>& top_level_rules() {
    static const std::vector<std::pair<std::string, std::string>> rules = {
        {"condition_embedder.time_embedder.linear_1.", "time_embedding.0."},
        {"condition_embedder.time_embedder.linear_2.", "time_embedding.2."},
        {"condition_embedder.text_embedder.linear_1.", "text_embedding.0."},
        {"condition_embedder.text_embedder.linear_2.", "text_embedding.2."},
        {"condition_embedder.time_proj.", "time_projection.1."},
        {"condition_embedder.image_embedder.norm1.", "img_emb.proj.0."},
        {"condition_embedder.image_embedder.ff.net.0.proj.", "img_emb.proj.1."},
        {"condition_embedder.image_embedder.ff.net.2.", "img_emb.proj.3."},
        {"condition_embedder.image_embedder.norm2.", "img_emb.proj.4."},
        {"condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos"},
        {"proj_out.", "head.head."},
        {"scale_shift_table", "head.modulation"},
    };
    return rules;
}

const std::vector<std::pair<std::string, std::string>>& block_rules() {
    static const std::vector<std::pair<std::string, std::string>> rules = {
        {"attn1.to_q.", "self_attn.q."},
        {"attn1.to_k.", "self_attn.k."},
        {"attn1.to_v.", "self_attn.v."},
        {"attn1.to_out.0.", "self_attn.o."},
        {"attn1.norm_q.", "self_attn.norm_q."},
        {"attn1.norm_k.", "self_attn.norm_k."},
        {"attn2.to_q.", "cross_attn.q."},
        {"attn2.to_k.", "cross_attn.k."},
        {"attn2.to_v.", "cross_attn.v."},
        {"attn2.to_out.0.", "cross_attn.o."},
        {"attn2.norm_q.", "cross_attn.norm_q."},
        {"attn2.norm_k.", "cross_attn.norm_k."},
        {"attn2.add_k_proj.", "cross_attn.k_img."},
        {"attn2.add_v_proj.", "cross_attn.v_img."},
        {"attn2.norm_added_k.", "cross_attn.norm_k_img."},
        // diffusers' norm2 is the affine cross-attention norm (original norm3); the original
        // norm2 has no parameters, so this never touches an original key.
        {"norm2.", "norm3."},
        {"ffn.net.0.proj.", "ffn.0."},
        {"ffn.net.2.", "ffn.2."},
        {"scale_shift_table", "modulation"},
        {"proj_in.", "before_proj."},
        {"proj_out.", "after_proj."},
    };
    return rules;
}

}  // namespace

std::optional<std::string> to_original_key(const std::string& key_in) {
    std::string key = key_in;
    for (const char* prefix : {"model.diffusion_model.", "diffusion_model.", "_orig_mod.", "module.", "model."}) {
        if (replace_prefix(key, prefix, "")) break;
    }
    std::string head, rest;
    if (split_block(key, head, rest)) {
        if (rest.find("norm_added_q") != std::string::npos) return std::nullopt;
        for (const auto& [from, to] : block_rules()) {
            if (replace_prefix(rest, from, to)) break;
        }
        return head + rest;
    }
    for (const auto& [from, to] : top_level_rules()) {
        if (replace_prefix(key, from, to)) break;
    }
    return key;
}

std::string detect_key_format(const io::Checkpoint& ckpt) {
    bool original = false, diffusers = false;
    for (const auto& name : ckpt.names()) {
        if (name.find("self_attn.q.") != std::string::npos || name.find("time_embedding.") != std::string::npos)
            original = true;
        if (name.find("attn1.to_q.") != std::string::npos || name.find("condition_embedder.") != std::string::npos)
            diffusers = true;
    }
    if (original && !diffusers) return "original";
    if (diffusers && !original) return "diffusers";
    return "unknown";
}

}  // namespace ipa::models::wan
