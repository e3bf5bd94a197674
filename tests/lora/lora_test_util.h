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

namespace ipa_test_lora {

namespace fs = std::filesystem;
using ipa::lora::LoRAConfig;
using ipa::models::wan::LinearImpl;
using ipa::models::wan::make_wan_model;
using ipa::models::wan::WanConfig;
using ipa::models::wan::WanInputs;
using ipa::models::wan::WanModelImpl;

inline WanConfig tiny() { return WanConfig::preset("tiny"); }

inline WanInputs tiny_inputs(const WanConfig& c, int64_t b = 2) {
    torch::manual_seed(7);
    WanInputs in;
    in.x = torch::randn({b, c.in_dim, 3, 4, 6});
    in.t = torch::tensor(std::vector<float>{900.0f, 125.5f}).narrow(0, 0, b);
    in.context = torch::randn({b, 5, c.text_dim});
    if (c.is_vace()) in.vace_context = torch::randn({b, c.vace_in_dim, 3, 4, 6});
    in.context_scale = 0.8;
    return in;
}

// Non-zero weights everywhere (upstream zero-inits head and VACE projections).
inline void randomize(torch::nn::Module& m, uint64_t seed) {
    torch::manual_seed(seed);
    torch::NoGradGuard g;
    for (auto& p : m.named_parameters()) {
        const double fan_in = p.value().dim() > 1 ? double(p.value().numel() / p.value().size(0)) : 1.0;
        p.value().copy_(torch::randn_like(p.value()) / std::sqrt(fan_in) * (p.value().dim() > 1 ? 1.0 : 0.3));
    }
}

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

struct TempDir {
    fs::path path;
    TempDir() {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        path = fs::temp_directory_path() /
               ("ipa_test_lora_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path operator/(const std::string& name) const { return path / name; }
};

template <class Fn>
inline std::string error_of(Fn&& fn) {
    try {
        fn();
    } catch (const ipa::Error& e) {
        return e.what();
    }
    return "<no error>";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace ipa_test_lora
