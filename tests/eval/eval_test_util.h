#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <optional>
#include <string>

#include "ipa/eval/report.h"
#include "ipa/io/safetensors.h"

namespace ipa::test {

/// `report` written to `dir` and its summary value `key` read back as `ipa-eval compare` reads
/// it (nullopt when the summary lacks it).
inline std::optional<double> written_summary_value(const eval::Report& report, const std::filesystem::path& dir,
                                                   const std::string& key) {
    eval::write_report(dir, report);
    for (const auto& [k, v] : eval::read_report_summary(dir / "metrics.json"))
        if (k == key) return v;
    return std::nullopt;
}

inline std::filesystem::path eval_fixture(const std::string& name) {
    return std::filesystem::path(IPA_FIXTURES_DIR) / "eval" / name;
}

/// A float64 number stored under `__metadata__` by scripts/gen_eval_fixtures.py.
inline double meta_double(const io::SafetensorsFile& f, const std::string& key) {
    return std::stod(f.metadata().at(key));
}

/// A uint8 [H, W, C] or [H, W] tensor as a cv::Mat (copied).
inline cv::Mat to_mat(const at::Tensor& t) {
    const int h = static_cast<int>(t.size(0)), w = static_cast<int>(t.size(1));
    const int c = t.dim() == 3 ? static_cast<int>(t.size(2)) : 1;
    const auto ct = t.contiguous();
    return cv::Mat(h, w, CV_8UC(c), const_cast<void*>(ct.data_ptr())).clone();
}

}  // namespace ipa::test
