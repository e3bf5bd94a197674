#pragma once

// Helpers of the VAE tests (header-only, tests only).

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ipa/models/vae/config.h"
#include "ipa/models/vae/loader.h"
#include "ipa/models/vae/model.h"
#include "test_util.h"

namespace ipa::test::vae {

using ipa::test::error_of;

// These tests run tiny tensors: one intra-op thread is ~100x faster than two OpenMP threads
// spinning on a loaded 2-core machine (measured 74 ms vs 7 s for a parity case).
inline const bool kSingleThread = [] {
    at::set_num_threads(1);
    return true;
}();

inline const std::filesystem::path& fixture_dir() {
    static const std::filesystem::path d = std::filesystem::path(IPA_FIXTURES_DIR) / "vae";
    return d;
}

/// Same generator as scripts/gen_vae_fixtures.py det_uniform: an integer hash of the flat
/// index mapped to k·2^-23 − 1 in [−1, 1) (exact in float32). float32 tensor of `shape`.
inline at::Tensor det_uniform(const std::vector<int64_t>& shape, uint32_t seed) {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    auto out = torch::empty({n}, torch::kFloat);
    auto* p = out.data_ptr<float>();
    const uint32_t offset = seed * 0x85EBCA77u + 0x165667B1u;
    for (int64_t i = 0; i < n; ++i) {
        uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u + offset;
        h ^= h >> 15;
        h *= 0x2C1B3C6Du;
        h ^= h >> 12;
        h *= 0x297A2D39u;
        h ^= h >> 15;
        p[i] = static_cast<float>(static_cast<double>(h >> 8) / double(1 << 23) - 1.0);
    }
    return out.view(shape);
}

/// The tiny VAE of the fixtures with its upstream weights (read through the .pth reader).
inline std::shared_ptr<models::vae::WanVAEImpl> tiny_vae() {
    static std::shared_ptr<models::vae::WanVAEImpl> model = models::vae::load_wan_vae(
        fixture_dir() / "tiny.weights.pth", torch::kCPU, torch::kFloat, models::vae::VaeConfig::preset("tiny"));
    return model;
}

/// A fresh directory per test, removed afterwards.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string name = info ? std::string(info->test_suite_name()) + "_" + info->name() : "none";
        for (auto& c : name) {
            if (c == '/') c = '_';
        }
        path = std::filesystem::temp_directory_path() / ("ipa_vae_" + std::to_string(::getpid()) + "_" + name);
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
    return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace ipa::test::vae
