#include "ipa/models/t5/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/config_json.h"

namespace ipa::models::t5 {

void T5Config::validate() const {
    auto bad = [](const std::string& what) { throw ConfigError("T5 config: " + what); };
    for (auto [name, v] : {std::pair<const char*, int64_t>{"vocab", vocab},
                           {"dim", dim},
                           {"dim_attn", dim_attn},
                           {"dim_ffn", dim_ffn},
                           {"num_heads", num_heads},
                           {"num_layers", num_layers},
                           {"num_buckets", num_buckets},
                           {"max_dist", max_dist}}) {
        if (v < 1) bad(fmt::format("{} = {} must be positive", name, v));
    }
    if (dim_attn % num_heads != 0) {
        bad(fmt::format("dim_attn {} is not divisible by num_heads {}", dim_attn, num_heads));
    }
    // Bidirectional buckets: half per direction, a quarter exact; the log part needs max_dist > max_exact.
    if (num_buckets % 4 != 0) bad(fmt::format("num_buckets {} must be a multiple of 4", num_buckets));
    if (max_dist <= num_buckets / 4) {
        bad(fmt::format("max_dist {} must exceed num_buckets/4 = {}", max_dist, num_buckets / 4));
    }
    if (!(eps > 0)) bad(fmt::format("eps {} must be positive", eps));
}

T5Config T5Config::umt5_xxl() { return T5Config{}; }

T5Config T5Config::tiny() {
    T5Config c;
    c.vocab = 608;
    c.dim = 32;
    c.dim_attn = 32;
    c.dim_ffn = 48;
    c.num_heads = 4;
    c.num_layers = 2;
    return c;
}

T5Config T5Config::preset(const std::string& name) {
    if (name == "umt5-xxl" || name == "umt5_xxl") return umt5_xxl();
    if (name == "tiny") return tiny();
    throw ConfigError(fmt::format("unknown T5 preset '{}' (known: umt5-xxl, tiny)", name));
}

namespace {

// transformers saves UMT5EncoderModel / T5EncoderModel as a folder with config.json next to
// the weights. The shapes give every size but `relative_attention_max_distance` and
// `layer_norm_epsilon`; config.json has them. Values it shares with the shapes must agree.
void apply_transformers_config(T5Config& c, const io::Checkpoint& ckpt) {
    const auto config = io::read_config_json(ckpt);
    if (!config) return;
    const auto& path = config->path;
    const auto& j = config->json;
    const auto type = j.value("model_type", std::string());
    if (type != "umt5" && type != "t5" && type != "mt5") return;
    auto fail = [&](const std::string& what) {
        throw CheckpointError(
            fmt::format("'{}' ({}) does not match the weights or Wan's encoder: {}", path.string(), type, what));
    };
    auto same = [&](const char* key, int64_t have) {
        if (j.contains(key) && j[key].get<int64_t>() != have)
            fail(fmt::format("{} {} != {}", key, j[key].dump(), have));
    };
    try {
        same("d_model", c.dim);
        same("d_ff", c.dim_ffn);
        same("num_heads", c.num_heads);
        same("num_layers", c.num_layers);
        same("vocab_size", c.vocab);
        same("relative_attention_num_buckets", c.num_buckets);
        if (j.contains("d_kv")) same("d_kv", c.dim_attn / c.num_heads);
        // Wan's FFN: fc2(fc1(x) * gelu_tanh(gate(x))) = transformers' gated "gelu_new".
        const auto act = j.value("dense_act_fn", std::string("gelu_new"));
        if (!j.value("is_gated_act", true) || (act != "gelu_new" && act != "gelu_pytorch_tanh")) {
            fail("feed-forward " + j.value("feed_forward_proj", std::string("?")) + " / " + act +
                 " (Wan's encoder is gated-gelu with the tanh GELU)");
        }
        c.max_dist = j.value("relative_attention_max_distance", c.max_dist);
        c.eps = j.value("layer_norm_epsilon", c.eps);
    } catch (const nlohmann::json::exception& e) {
        fail(e.what());
    }
}

}  // namespace

T5Config T5Config::detect(const io::Checkpoint& ckpt) {
    auto fail = [&](const std::string& why) {
        throw CheckpointError(
            fmt::format("'{}' is not a T5 encoder checkpoint: {}. Expected Wan names "
                        "(token_embedding.weight, blocks.N.*) or Hugging Face UMT5 names "
                        "(shared.weight, encoder.block.N.*)",
                        ckpt.description(), why));
    };
    const bool hf = !ckpt.contains("token_embedding.weight");
    auto first = [&](std::initializer_list<const char*> names) -> std::vector<int64_t> {
        for (const char* n : names) {
            if (ckpt.contains(n)) return ckpt.shape(n);
        }
        fail(fmt::format("none of {} is present", fmt::join(names, ", ")));
        return {};
    };
    T5Config c;
    const auto emb = hf ? first({"shared.weight", "encoder.embed_tokens.weight"}) : first({"token_embedding.weight"});
    const auto q = hf ? first({"encoder.block.0.layer.0.SelfAttention.q.weight"}) : first({"blocks.0.attn.q.weight"});
    const auto fc1 =
        hf ? first({"encoder.block.0.layer.1.DenseReluDense.wi_1.weight"}) : first({"blocks.0.ffn.fc1.weight"});
    if (emb.size() != 2 || q.size() != 2 || fc1.size() != 2) fail("embedding/projection tensors are not matrices");
    c.vocab = emb[0];
    c.dim = emb[1];
    c.dim_attn = q[0];
    c.dim_ffn = fc1[0];
    const std::regex layer_re(hf ? R"(^encoder\.block\.(\d+)\.)" : R"(^blocks\.(\d+)\.)");
    int64_t layers = 0;
    for (const auto& n : ckpt.names()) {
        std::smatch m;
        if (std::regex_search(n, m, layer_re)) layers = std::max<int64_t>(layers, std::stoll(m[1]) + 1);
    }
    if (layers == 0) fail("no encoder layers found");
    c.num_layers = layers;
    const char* per_layer = hf ? "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"
                               : "blocks.0.pos_embedding.embedding.weight";
    const char* shared =
        hf ? "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight" : "pos_embedding.embedding.weight";
    // HF T5 keeps the bias in block 0 only (shared); UMT5 has it in every block.
    c.shared_pos = hf ? (layers > 1 && !ckpt.contains(per_layer)) : ckpt.contains(shared);
    const auto pos = ckpt.contains(per_layer) ? ckpt.shape(per_layer) : first({shared});
    if (pos.size() != 2) fail("relative position embedding is not [buckets, heads]");
    c.num_buckets = pos[0];
    c.num_heads = pos[1];
    if (hf) apply_transformers_config(c, ckpt);
    try {
        c.validate();
    } catch (const ConfigError& e) {
        fail(e.what());
    }
    return c;
}

std::string T5Config::describe() const {
    return fmt::format("vocab {}, dim {}, dim_attn {}, dim_ffn {}, heads {}, layers {}, buckets {}, {} position bias",
                       vocab, dim, dim_attn, dim_ffn, num_heads, num_layers, num_buckets,
                       shared_pos ? "shared" : "per-layer");
}

bool T5Config::operator==(const T5Config& o) const {
    return vocab == o.vocab && dim == o.dim && dim_attn == o.dim_attn && dim_ffn == o.dim_ffn &&
           num_heads == o.num_heads && num_layers == o.num_layers && num_buckets == o.num_buckets &&
           max_dist == o.max_dist && shared_pos == o.shared_pos && eps == o.eps;
}

}  // namespace ipa::models::t5
