#pragma once

// Helpers shared by the ipa::lora tests: the tiny model, inputs, weight randomisation,
// temporary directories.

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ipa/core/error.h"
#include "ipa/lora/lora.h"
#include "ipa/models/wan/model.h"
#include "test_util.h"

namespace ipa_test_lora {

namespace fs = std::filesystem;
using ipa::lora::LoRAConfig;
using ipa::models::wan::LinearImpl;
using ipa::models::wan::make_wan_model;
using ipa::models::wan::WanConfig;
using ipa::models::wan::WanInputs;
using ipa::models::wan::WanModelImpl;

inline WanConfig tiny() { return WanConfig::preset("tiny"); }

using ipa::test::error_of;
using ipa::test::randomize;
using ipa::test::tiny_inputs;

inline std::shared_ptr<WanModelImpl> base_model(const WanConfig& c = tiny(), uint64_t seed = 11) {
    auto m = make_wan_model(c);
    randomize(*m, seed);
    return m;
}

// Gives every adapter non-zero B (and a fresh A) so that the adapter changes the output.
inline void randomize_lora(torch::nn::Module& m, uint64_t seed, double std = 0.2) {
    torch::manual_seed(seed);
    torch::NoGradGuard g;
    for (auto& t : ipa::lora::lora_parameters(m)) t.copy_(torch::randn_like(t) * std);
}

inline torch::Tensor run(WanModelImpl& m, const WanInputs& in) {
    torch::NoGradGuard g;
    return m.forward(in);
}

inline LoRAConfig small(const std::string& blocks = "main", int64_t rank = 4, double alpha = 8) {
    LoRAConfig c;
    c.rank = rank;
    c.alpha = alpha;
    c.blocks = blocks;
    return c;
}

inline std::shared_ptr<LinearImpl> linear(torch::nn::Module& m, const std::string& name) {
    for (const auto& item : m.named_modules("", false)) {
        if (item.key() == name) return std::dynamic_pointer_cast<LinearImpl>(item.value());
    }
    return nullptr;
}

inline int64_t param_bytes(torch::nn::Module& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += static_cast<int64_t>(p.nbytes());
    return n;
}

struct TempDir : ipa::test::TempDir {
    TempDir() : ipa::test::TempDir("ipa_test_lora") {}
    fs::path operator/(const std::string& name) const { return path / name; }
};

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace ipa_test_lora
