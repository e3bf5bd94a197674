#pragma once

// In-memory manifests and scores for the review tests.

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ipa/curate/manifest.h"
#include "ipa/curate/score.h"

namespace ipa::test {

/// A manifest of `ids` whose videos are empty files under `dir`/videos (so links resolve),
/// with a `group` and a `label` column.
inline curate::Manifest small_manifest(const std::filesystem::path& dir, const std::vector<std::string>& ids) {
    namespace fs = std::filesystem;
    curate::Manifest m;
    m.path = dir / "candidates.csv";
    m.columns = {"id", "group", "video", "prompt", "label"};
    fs::create_directories(dir / "videos");
    for (std::size_t i = 0; i < ids.size(); ++i) {
        curate::ManifestRow r;
        r.id = ids[i];
        r.video = dir / "videos" / ("v" + std::to_string(i) + ".mp4");
        std::ofstream(r.video) << "x";
        r.prompt = "a person dancing " + std::to_string(i);
        r.extra["group"] = "g" + std::to_string(i / 2);
        r.extra["label"] = i % 2 ? "bad" : "good";
        m.rows.push_back(r);
    }
    return m;
}

/// One score per (id, value); pass = value >= 0.5; two stats and three frames whose score
/// and hand confidence fall by 0.1 per frame.
inline std::vector<curate::CandidateScore> small_scores(const std::vector<std::pair<std::string, double>>& v) {
    std::vector<curate::CandidateScore> out;
    for (const auto& [id, s] : v) {
        curate::CandidateScore c;
        c.id = id;
        c.group = "grp";
        c.score = s;
        c.pass = s >= 0.5;
        c.stats = {{"confidence_mean", s * 0.9}, {"jitter", 0.01 + s / 100}};
        for (int f = 0; f < 3; ++f) {
            curate::FrameScore fs;
            fs.frame = f;
            fs.hand_confidence = fs.score = s - 0.1 * f;
            fs.visible_fraction = 1.0;
            c.frames.push_back(fs);
        }
        out.push_back(c);
    }
    return out;
}

}  // namespace ipa::test
