#pragma once

// Helpers shared by the test suites (header-only, tests only).

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "ipa/core/error.h"
#include "ipa/models/wan/config.h"
#include "ipa/models/wan/model.h"

namespace ipa::test {

/// A fresh directory per test (named after it), removed afterwards. `prefer_tmpfs` puts it
/// in /dev/shm when there is one (for tests that rewrite files many times).
struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& prefix = "ipa", bool prefer_tmpfs = false) {
        namespace fs = std::filesystem;
        const fs::path base =
            prefer_tmpfs && fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string name = info ? std::string(info->test_suite_name()) + "_" + info->name() : "none";
        for (auto& c : name) {
            if (c == '/') c = '_';
        }
        static int counter = 0;  // several TempDirs in one test get distinct paths
        path = base / (prefix + "_" + std::to_string(::getpid()) + "_" + name + "_" + std::to_string(counter++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

/// The message of the `E` that `fn` throws, or "<no E thrown>" (then any EXPECT_CONTAINS
/// on it fails and prints it).
template <class E = ipa::Error, class Fn>
std::string error_of(Fn&& fn) {
    try {
        fn();
    } catch (const E& e) {
        return e.what();
    }
    return "<no expected exception thrown>";
}

/// Expects `needle` in `haystack`, printing the haystack otherwise.
#define EXPECT_CONTAINS(haystack, needle) \
    EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "in: " << (haystack)

/// Non-zero weights everywhere (upstream zero-inits the head and the VACE projections,
/// which would hide bugs): N(0,1)/√fan_in for matrices, 0.3·N(0,1) for vectors.
inline void randomize(torch::nn::Module& m, uint64_t seed) {
    torch::manual_seed(seed);
    torch::NoGradGuard g;
    for (auto& p : m.named_parameters()) {
        const double fan_in = p.value().dim() > 1 ? double(p.value().numel() / p.value().size(0)) : 1.0;
        p.value().copy_(torch::randn_like(p.value()) / std::sqrt(fan_in) * (p.value().dim() > 1 ? 1.0 : 0.3));
    }
}

/// Inputs for a tiny model: latent 3x4x6, 5 text tokens, context_scale 0.8.
inline models::wan::WanInputs tiny_inputs(const models::wan::WanConfig& c, int64_t b = 2) {
    torch::manual_seed(7);
    models::wan::WanInputs in;
    in.x = torch::randn({b, c.in_dim, 3, 4, 6});
    in.t = torch::tensor(std::vector<float>{900.0f, 125.5f}).narrow(0, 0, b);
    in.context = torch::randn({b, 5, c.text_dim});
    if (c.is_vace()) in.vace_context = torch::randn({b, c.vace_in_dim, 3, 4, 6});
    in.context_scale = 0.8;
    return in;
}

}  // namespace ipa::test
