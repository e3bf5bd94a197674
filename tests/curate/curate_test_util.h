#pragma once

// Helpers of the curate-core tests (header-only, tests only).

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "test_util.h"

namespace ipa::curate::test {

/// A fresh directory per test (tests/common/test_util.h).
using ipa::test::TempDir;

/// Writes `text` to `path` (binary).
inline void write_text(const std::filesystem::path& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
}

/// Reads a whole file (binary).
inline std::string read_text(const std::filesystem::path& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

/// Runs `fn`, expects an exception of type E whose message contains every one of `parts`.
template <typename E, typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> parts) {
    try {
        fn();
        ADD_FAILURE() << "no exception thrown";
    } catch (const E& e) {
        const std::string msg = e.what();
        for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    }
}

}  // namespace ipa::curate::test
