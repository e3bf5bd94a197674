#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/io/state_dict.h"
#include "ipa/io/summary.h"

namespace fs = std::filesystem;
using ipa::io::Checkpoint;
using ipa::io::LoadOptions;

namespace {

// A small module with upstream-style nested names: blocks.0.q.weight, head.bias, …
struct BlockImpl : torch::nn::Module {
    torch::nn::Linear q{nullptr};
    torch::Tensor modulation;
    BlockImpl() {
        q = register_module("q", torch::nn::Linear(4, 4));
        modulation = register_parameter("modulation", torch::zeros({1, 2, 4}));
    }
};
TORCH_MODULE(Block);

struct NetImpl : torch::nn::Module {
    torch::nn::ModuleList blocks{nullptr};
    torch::nn::Linear head{nullptr};
    NetImpl() {
        blocks = register_module("blocks", torch::nn::ModuleList());
        blocks->push_back(Block());
        blocks->push_back(Block());
        head = register_module("head", torch::nn::Linear(4, 3));
        register_buffer("scale", torch::ones({3}));
    }
};
TORCH_MODULE(Net);

ipa::io::NamedTensors full_state(float offset) {
    ipa::io::NamedTensors out;
    Net ref;
    int i = 0;
    for (auto& p : ref->named_parameters()) {
        out.emplace_back(p.key(), torch::full(p.value().sizes(), offset + i++));
    }
    out.emplace_back("scale", torch::full({3}, 7.0));
    return out;
}

TEST(LoadStateDict, LoadsEveryKeyByNameWithValues) {
    Net net;
    const auto ck = Checkpoint::from_tensors(full_state(1.0f));
    const auto report = ipa::io::load_state_dict(*net, ck);
    EXPECT_TRUE(report.ok());
    EXPECT_EQ(report.loaded.size(), ck.size());
    for (const auto& [name, t] : full_state(1.0f)) {
        auto params = net->named_parameters();
        auto buffers = net->named_buffers();
        const auto* p = params.find(name);
        const auto* b = buffers.find(name);
        ASSERT_TRUE(p || b) << name;
        EXPECT_TRUE(torch::equal(p ? *p : *b, t)) << name;
    }
}

TEST(LoadStateDict, StrictReportsAllProblemsInOneError) {
    Net net;
    auto state = full_state(0.0f);
    state.erase(state.begin());                                    // one missing
    state.emplace_back("blocks.0.k.weight", torch::ones({4, 4}));  // unexpected
    for (auto& [name, t] : state) {
        if (name == "head.weight") t = torch::ones({3, 5});  // shape mismatch
    }
    const auto before = net->head->weight.clone();
    try {
        ipa::io::load_state_dict(*net, Checkpoint::from_tensors(state, "bad.safetensors"));
        FAIL() << "expected CheckpointError";
    } catch (const ipa::CheckpointError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
        EXPECT_NE(msg.find("missing from the checkpoint (1)"), std::string::npos) << msg;
        EXPECT_NE(msg.find("blocks.0.k.weight"), std::string::npos) << msg;
        EXPECT_NE(msg.find("head.weight: module [3, 4], checkpoint [3, 5]"), std::string::npos) << msg;
    }
    // A failed strict load changes nothing.
    EXPECT_TRUE(torch::equal(before, net->head->weight));
}

TEST(LoadStateDict, NonStrictLoadsTheRestAndReports) {
    Net net;
    auto state = full_state(0.0f);
    state.pop_back();  // "scale" missing
    LoadOptions opt;
    opt.strict = false;
    const auto report = ipa::io::load_state_dict(*net, Checkpoint::from_tensors(state), opt);
    EXPECT_EQ(report.missing, (std::vector<std::string>{"scale"}));
    EXPECT_EQ(report.loaded.size(), state.size());
    opt.strict = true;
    opt.allow_missing = [](const std::string& k) { return k == "scale"; };
    EXPECT_TRUE(ipa::io::load_state_dict(*net, Checkpoint::from_tensors(state), opt).ok());
}

TEST(LoadStateDict, KeyMapRenamesAndDropsAndDetectsCollisions) {
    Net net;
    ipa::io::NamedTensors prefixed;
    for (auto& [name, t] : full_state(2.0f)) prefixed.emplace_back("model.diffusion_model." + name, t);
    prefixed.emplace_back("first_stage_model.x", torch::ones({1}));
    LoadOptions opt;
    opt.key_map = [](const std::string& k) -> std::optional<std::string> {
        const std::string prefix = "model.diffusion_model.";
        if (k.rfind(prefix, 0) == 0) return k.substr(prefix.size());
        return std::nullopt;
    };
    const auto report = ipa::io::load_state_dict(*net, Checkpoint::from_tensors(prefixed), opt);
    EXPECT_TRUE(report.ok());
    EXPECT_EQ(net->named_buffers()["scale"][0].item<float>(), 7.0f);

    opt.key_map = [](const std::string&) -> std::optional<std::string> { return "head.bias"; };
    try {
        ipa::io::load_state_dict(*net, Checkpoint::from_tensors(prefixed), opt);
        FAIL();
    } catch (const ipa::CheckpointError& e) {
        EXPECT_NE(std::string(e.what()).find("mapped from several checkpoint keys"), std::string::npos);
    }
}

TEST(LoadStateDict, ConvertsDtypeOnceAtLoad) {
    Net net;
    auto state = full_state(0.5f);
    for (auto& kv : state) kv.second = kv.second.to(torch::kBFloat16);
    LoadOptions opt;
    opt.dtype = torch::kBFloat16;
    ipa::io::load_state_dict(*net, Checkpoint::from_tensors(state), opt);
    EXPECT_EQ(net->head->weight.scalar_type(), torch::kBFloat16);
    // fp32 module, bf16 file: values are converted into the module's dtype.
    Net net32;
    ipa::io::load_state_dict(*net32, Checkpoint::from_tensors(state));
    EXPECT_EQ(net32->head->weight.scalar_type(), torch::kFloat);
    const auto bias = std::find_if(state.begin(), state.end(), [](const auto& kv) { return kv.first == "head.bias"; });
    EXPECT_EQ(net32->head->bias[0].item<float>(), bias->second[0].to(torch::kFloat).item<float>());
}

TEST(LoadStateDict, FromSafetensorsFileAndKeyListing) {
    const fs::path dir = fs::temp_directory_path() / ("ipa_sd_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    Net src;
    ipa::io::NamedTensors tensors;
    for (auto& p : src->named_parameters()) tensors.emplace_back(p.key(), p.value());
    for (auto& b : src->named_buffers()) tensors.emplace_back(b.key(), b.value());
    ipa::io::save_safetensors(dir / "net.safetensors", tensors, {{"model_type", "toy"}});
    Net dst;
    const auto ck = Checkpoint::open(dir / "net.safetensors");
    ipa::io::load_state_dict(*dst, ck);
    EXPECT_TRUE(torch::equal(src->blocks->ptr<BlockImpl>(1)->q->weight, dst->blocks->ptr<BlockImpl>(1)->q->weight));
    const auto listing = ipa::io::format_key_list(ck);
    EXPECT_NE(listing.find("blocks.1.q.weight"), std::string::npos) << listing;
    EXPECT_NE(listing.find("F32      [4, 4]"), std::string::npos) << listing;
    EXPECT_NE(listing.find("9 tensors, 74 elements"), std::string::npos) << listing;
    ipa::io::KeyListOptions opt;
    opt.json = true;
    opt.contains = "head";
    const auto json = ipa::io::format_key_list(ck, opt);
    EXPECT_NE(json.find("\"elements\": 15"), std::string::npos) << json;
    EXPECT_NE(json.find("\"model_type\": \"toy\""), std::string::npos) << json;
    fs::remove_all(dir);
}

}  // namespace
