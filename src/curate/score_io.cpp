// scores.csv / scores.json writing and reading.

#include <cmath>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/curate/score.h"

namespace ipa::curate {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + '"';
}

std::string num(double v) {
    std::ostringstream o;
    o << std::setprecision(9) << v;
    return o.str();
}

const char* const kFrameKeys[] = {"hand_confidence", "visible_fraction",  "hand_sharpness", "body_sharpness",
                                  "jitter",          "finger_confidence", "accel",          "score"};

double* frame_field(FrameScore& f, const std::string& k) {
    if (k == "hand_confidence") return &f.hand_confidence;
    if (k == "visible_fraction") return &f.visible_fraction;
    if (k == "hand_sharpness") return &f.hand_sharpness;
    if (k == "body_sharpness") return &f.body_sharpness;
    if (k == "jitter") return &f.jitter;
    if (k == "finger_confidence") return &f.finger_confidence;
    if (k == "accel") return &f.accel;
    if (k == "score") return &f.score;
    return nullptr;
}

double finite(double v) { return std::isfinite(v) ? v : -1.0; }

}  // namespace

json score_to_json(const CandidateScore& s) {
    json stats = json::object();
    for (const auto& [k, v] : s.stats) stats[k] = finite(v);
    json frames = json::array();
    for (const auto& f : s.frames) {
        json jf = {{"frame", f.frame}};
        FrameScore copy = f;
        for (const char* k : kFrameKeys) jf[k] = finite(*frame_field(copy, k));
        frames.push_back(std::move(jf));
    }
    return {{"id", s.id},     {"group", s.group},          {"score", finite(s.score)},
            {"pass", s.pass}, {"stats", std::move(stats)}, {"frames", std::move(frames)}};
}

CandidateScore score_from_json(const json& j, const std::string& where) {
    try {
        CandidateScore s;
        s.id = j.at("id").get<std::string>();
        s.group = j.at("group").get<std::string>();
        s.score = j.at("score").get<double>();
        s.pass = j.at("pass").get<bool>();
        for (const auto& [k, v] : j.at("stats").items()) s.stats[k] = v.get<double>();
        for (const auto& jf : j.at("frames")) {
            FrameScore f;
            f.frame = jf.at("frame").get<int64_t>();
            for (const char* k : kFrameKeys) *frame_field(f, k) = jf.at(k).get<double>();
            s.frames.push_back(f);
        }
        return s;
    } catch (const json::exception& e) {
        throw DataError(where + ": " + e.what());
    }
}

void write_scores(const fs::path& out_dir, const std::vector<CandidateScore>& scores,
                  const std::vector<RowFailure>& failed) {
    std::set<std::string> keys;
    for (const auto& s : scores)
        for (const auto& [k, v] : s.stats) keys.insert(k);
    std::ostringstream csv;
    csv << "id,group,score,pass";
    for (const auto& k : keys) csv << ',' << csv_field(k);
    csv << '\n';
    json arr = json::array();
    for (const auto& s : scores) {
        csv << csv_field(s.id) << ',' << csv_field(s.group) << ',' << num(s.score) << ',' << (s.pass ? 1 : 0);
        for (const auto& k : keys) {
            const auto it = s.stats.find(k);
            csv << ',' << (it == s.stats.end() ? std::string() : num(it->second));
        }
        csv << '\n';
        arr.push_back(score_to_json(s));
    }
    json fails = json::array();
    for (const auto& f : failed) fails.push_back({{"id", f.id}, {"error", f.reason}});
    const json doc = {
        {"format", "ipa-curate-scores"}, {"version", 1}, {"candidates", std::move(arr)}, {"failed", std::move(fails)}};
    fs::create_directories(out_dir);
    write_file_atomic(out_dir / "scores.csv", csv.str());
    write_file_atomic(out_dir / "scores.json", doc.dump(1) + "\n");
}

namespace {

json read_scores_doc(const fs::path& scores_json) {
    const std::string src = scores_json.u8string();
    json doc;
    try {
        doc = json::parse(read_file(scores_json));
    } catch (const json::exception& e) {
        throw DataError(src + ": not valid JSON (" + e.what() + ")");
    }
    if (!doc.is_object() || doc.value("format", "") != "ipa-curate-scores")
        throw DataError(src +
                        ": not a scores file (expected \"format\": \"ipa-curate-scores\"); hint: write it "
                        "with `ipa-curate score`");
    return doc;
}

}  // namespace

std::vector<CandidateScore> read_scores(const fs::path& scores_json) {
    const std::string src = scores_json.u8string();
    const json doc = read_scores_doc(scores_json);
    std::vector<CandidateScore> out;
    try {
        const auto& arr = doc.at("candidates");
        for (size_t i = 0; i < arr.size(); ++i)
            out.push_back(score_from_json(arr.at(i), src + ": candidates[" + std::to_string(i) + "]"));
    } catch (const json::exception& e) {
        throw DataError(src + ": " + e.what());
    }
    return out;
}

std::vector<RowFailure> read_score_failures(const fs::path& scores_json) {
    const std::string src = scores_json.u8string();
    const json doc = read_scores_doc(scores_json);
    std::vector<RowFailure> out;
    if (!doc.contains("failed")) return out;
    try {
        for (const auto& f : doc.at("failed"))
            out.push_back({f.at("id").get<std::string>(), f.at("error").get<std::string>()});
    } catch (const json::exception& e) {
        throw DataError(src + ": failed: " + e.what());
    }
    return out;
}

}  // namespace ipa::curate
