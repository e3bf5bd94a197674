#pragma once

// Helpers for the pose tests (header-only, tests only).

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "ipa/pose/keypoints.h"

namespace ipa::pose::test {

/// A fresh directory per test, removed afterwards.
struct PoseTempDir {
    std::filesystem::path path;
    PoseTempDir() {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        static int counter = 0;
        path = std::filesystem::temp_directory_path() /
               ("ipa_pose_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name() + "_" +
                std::to_string(counter++));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~PoseTempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    PoseTempDir(const PoseTempDir&) = delete;
    PoseTempDir& operator=(const PoseTempDir&) = delete;
};

inline void write_text(const std::filesystem::path& p, const std::string& text) {
    std::ofstream f(p, std::ios::binary);
    f << text;
}

/// n keypoints with coordinates in [0, extent) and confidences in [0, 1].
inline std::vector<Keypoint> random_keypoints(std::mt19937& rng, int n, float extent) {
    std::uniform_real_distribution<float> pos(0.0f, extent), conf(0.0f, 1.0f);
    std::vector<Keypoint> out(n);
    for (auto& k : out) k = {pos(rng), pos(rng), conf(rng)};
    return out;
}

inline std::filesystem::path fixtures() { return std::filesystem::path(IPA_FIXTURES_DIR) / "pose"; }

}  // namespace ipa::pose::test
