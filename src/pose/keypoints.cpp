#include "ipa/pose/keypoints.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"

namespace ipa::pose {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kBody18 = 18, kBody25 = 25, kHand = 21, kFeet = 6;

/// A frame that cannot be parsed; the reader adds the file (and line) to the reason.
struct BadFrame : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// The values of one flat `[x0, y0, c0, ...]` array; empty when the key is absent or null.
std::vector<float> flat_array(const json& person, const char* key) {
    auto it = person.find(key);
    if (it == person.end() || it->is_null()) return {};
    if (!it->is_array()) throw BadFrame(std::string("'") + key + "' is not an array");
    std::vector<float> out;
    out.reserve(it->size());
    for (std::size_t i = 0; i < it->size(); ++i) {
        const json& v = (*it)[i];
        if (!v.is_number()) throw BadFrame(std::string("'") + key + "'[" + std::to_string(i) + "] is not a number");
        const double d = v.get<double>();
        if (!std::isfinite(d) || std::fabs(d) > 3.0e38)
            throw BadFrame(std::string("'") + key + "'[" + std::to_string(i) + "] is out of range");
        out.push_back(static_cast<float>(d));
    }
    if (out.size() % 3 != 0)
        throw BadFrame(std::string("'") + key + "' has " + std::to_string(out.size()) +
                       " values, not a multiple of 3 (x, y, c per keypoint)");
    return out;
}

std::vector<Keypoint> to_keypoints(const std::vector<float>& v) {
    std::vector<Keypoint> out(v.size() / 3);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = {v[3 * i], v[3 * i + 1], v[3 * i + 2]};
    return out;
}

std::optional<int> canvas_key(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return std::nullopt;
    if (!it->is_number() || it->get<double>() < 1 || it->get<double>() > 1e6 ||
        it->get<double>() != std::floor(it->get<double>()))
        throw BadFrame(std::string("'") + key + "' must be a positive integer, got " + it->dump());
    return static_cast<int>(it->get<double>());
}

Person parse_person(const json& p, std::size_t index) {
    if (!p.is_object()) throw BadFrame("people[" + std::to_string(index) + "] is not an object");
    Person person;
    const auto where = [&](const char* key) { return std::string("people[") + std::to_string(index) + "]." + key; };
    const auto body = to_keypoints(flat_array(p, "pose_keypoints_2d"));
    if (body.empty()) {
        person.body.assign(kBody18, Keypoint{});
    } else if (body.size() == kBody18) {
        person.body = body;
    } else if (body.size() == kBody25) {
        // BODY_25 -> COCO-18: drop 8 (MidHip) and 19-24 (feet, kept in `feet`), shift the rest.
        person.body.assign(body.begin(), body.begin() + 8);
        person.body.insert(person.body.end(), body.begin() + 9, body.begin() + 19);
        person.feet.assign(body.begin() + 19, body.end());
    } else {
        throw BadFrame(where("pose_keypoints_2d") + " has " + std::to_string(body.size()) +
                       " keypoints; expected 18 (COCO-18, 54 values) or 25 (BODY_25, 75 values)");
    }
    person.hand_left = to_keypoints(flat_array(p, "hand_left_keypoints_2d"));
    person.hand_right = to_keypoints(flat_array(p, "hand_right_keypoints_2d"));
    for (const auto* h : {&person.hand_left, &person.hand_right}) {
        if (!h->empty() && h->size() != kHand)
            throw BadFrame(where(h == &person.hand_left ? "hand_left_keypoints_2d" : "hand_right_keypoints_2d") +
                           " has " + std::to_string(h->size()) + " keypoints; expected 21");
    }
    person.face = to_keypoints(flat_array(p, "face_keypoints_2d"));
    if (!person.face.empty() && person.face.size() != 68 && person.face.size() != 70)
        throw BadFrame(where("face_keypoints_2d") + " has " + std::to_string(person.face.size()) +
                       " keypoints; expected 68 or 70");
    return person;
}

template <class F>
void for_each_keypoint(Person& p, F&& f) {
    for (auto* part : {&p.body, &p.hand_left, &p.hand_right, &p.face, &p.feet})
        for (auto& k : *part) f(k);
}

PoseFrame parse_frame(const json& j, const KeypointReadOptions& opts) {
    if (!j.is_object()) throw BadFrame("the JSON value is not an object");
    auto people = j.find("people");
    if (people == j.end()) throw BadFrame("no 'people' key");
    if (!people->is_array()) throw BadFrame("'people' is not an array");
    PoseFrame frame;
    const auto cw = canvas_key(j, "canvas_width"), ch = canvas_key(j, "canvas_height");
    if (cw.has_value() != ch.has_value()) throw BadFrame("only one of 'canvas_width' / 'canvas_height' is given");
    frame.width = cw ? *cw : std::max(opts.canvas_width, 0);
    frame.height = ch ? *ch : std::max(opts.canvas_height, 0);
    for (std::size_t i = 0; i < people->size(); ++i) frame.people.push_back(parse_person((*people)[i], i));

    // Normalised ([0, 1]) or pixel coordinates: normalised when every present point lies in [0, 1].
    bool any = false, all_unit = true;
    for (auto& p : frame.people) {
        for_each_keypoint(p, [&](Keypoint& k) {
            if (k.c <= 0) return;
            any = true;
            all_unit = all_unit && k.x >= 0 && k.x <= 1 && k.y >= 0 && k.y <= 1;
        });
    }
    if (any && all_unit) {
        if (frame.width <= 0 || frame.height <= 0)
            throw BadFrame(
                "coordinates are normalised (all within [0, 1]) but the canvas size is unknown; "
                "add canvas_width/canvas_height to the JSON or set KeypointReadOptions::canvas_width/height");
        for (auto& p : frame.people) {
            for_each_keypoint(p, [&](Keypoint& k) {
                if (k.c <= 0) return;
                k.x *= static_cast<float>(frame.width);
                k.y *= static_cast<float>(frame.height);
            });
        }
    }
    return frame;
}

PoseFrame parse_text(const std::string& text, const KeypointReadOptions& opts) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        throw BadFrame(std::string("not valid JSON (") + e.what() + ")");
    }
    return parse_frame(j, opts);
}

/// Natural order: digit runs compare as numbers, the rest character by character.
bool natural_less(const std::string& a, const std::string& b) {
    std::size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
            std::size_t ie = i, je = j;
            while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
            while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
            std::string na = a.substr(i, ie - i), nb = b.substr(j, je - j);
            na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
            nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
            if (na.size() != nb.size()) return na.size() < nb.size();
            if (na != nb) return na < nb;
            i = ie;
            j = je;
        } else {
            if (a[i] != b[j]) return a[i] < b[j];
            ++i;
            ++j;
        }
    }
    return a.size() - i < b.size() - j;
}

/// The frame number of a file name: its last run of digits (OpenPose: `<name>_000000000012_keypoints`).
std::optional<int64_t> frame_number(const std::string& stem) {
    std::size_t end = stem.find_last_of("0123456789");
    if (end == std::string::npos) return std::nullopt;
    std::size_t begin = end;
    while (begin > 0 && std::isdigit(static_cast<unsigned char>(stem[begin - 1]))) --begin;
    if (end + 1 - begin > 15) return std::nullopt;
    return std::stoll(stem.substr(begin, end + 1 - begin));
}

class SequenceBuilder {
public:
    SequenceBuilder(const fs::path& source, const KeypointReadOptions& opts) : source_(source), opts_(opts) {}

    void good(PoseFrame f, std::string name) {
        seq_.frames.push_back(std::move(f));
        seq_.frame_sources.push_back(std::move(name));
    }
    void bad(std::string name, const std::string& reason) {
        if (!opts_.allow_bad_frames)
            throw DataError("keypoints " + name + ": " + reason +
                            " (set allow_bad_frames to keep such frames as empty frames)");
        spdlog::warn("keypoints {}: {}; kept as an empty frame", name, reason);
        PoseFrame empty;
        empty.width = std::max(opts_.canvas_width, 0);
        empty.height = std::max(opts_.canvas_height, 0);
        seq_.frames.push_back(std::move(empty));
        seq_.frame_sources.push_back(std::move(name));
        ++seq_.bad_frames;
    }
    PoseSequence finish() {
        if (seq_.frames.empty()) throw DataError("keypoints " + source_.string() + ": no frames");
        if (seq_.bad_frames > 0)
            spdlog::warn("keypoints {}: {} of {} frames were bad and are empty", source_.string(), seq_.bad_frames,
                         seq_.frames.size());
        return std::move(seq_);
    }

private:
    fs::path source_;
    KeypointReadOptions opts_;
    PoseSequence seq_;
};

PoseSequence read_dir(const fs::path& dir, const KeypointReadOptions& opts) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".json" && !e.is_directory()) files.push_back(e.path());
    if (files.empty())
        throw DataError("keypoints directory " + dir.string() +
                        " holds no .json files (expected one OpenPose JSON per frame)");
    std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
        const std::string na = a.filename().string(), nb = b.filename().string();
        if (natural_less(na, nb)) return true;
        return !natural_less(nb, na) && na < nb;  // equal numbers: deterministic order
    });

    // Frame numbers from the names: duplicates are an error, gaps are missing frames.
    std::vector<std::optional<int64_t>> numbers;
    bool numbered = true;
    for (const auto& f : files) {
        numbers.push_back(frame_number(f.stem().string()));
        numbered = numbered && numbers.back().has_value();
    }
    SequenceBuilder out(dir, opts);
    for (std::size_t i = 0; i < files.size(); ++i) {
        if (numbered && i > 0) {
            if (*numbers[i] == *numbers[i - 1])
                throw DataError("keypoints directory " + dir.string() + ": " + files[i - 1].filename().string() +
                                " and " + files[i].filename().string() + " are both frame " +
                                std::to_string(*numbers[i]) + " (remove one)");
            for (int64_t n = *numbers[i - 1] + 1; n < *numbers[i]; ++n)
                out.bad((dir / ("<frame " + std::to_string(n) + ">")).string(),
                        "missing: no file between " + files[i - 1].filename().string() + " and " +
                            files[i].filename().string());
        }
        const std::string name = files[i].string();
        std::string text;
        try {
            text = read_file(files[i]);
        } catch (const DataError& e) {
            out.bad(name, e.what());
            continue;
        }
        try {
            out.good(parse_text(text, opts), name);
        } catch (const BadFrame& e) {
            out.bad(name, e.what());
        }
    }
    return out.finish();
}

PoseSequence read_jsonl(const fs::path& file, const KeypointReadOptions& opts) {
    const std::string text = read_file(file);
    std::vector<std::string> lines;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        std::string line = text.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(std::move(line));
        pos = nl + 1;
    }
    const auto blank = [](const std::string& s) {
        return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
    };
    while (!lines.empty() && blank(lines.back())) lines.pop_back();  // trailing newlines only
    SequenceBuilder out(file, opts);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const std::string name = file.string() + ":" + std::to_string(i + 1);
        if (blank(lines[i])) {
            out.bad(name, "empty line (one JSON object per frame expected)");
            continue;
        }
        try {
            out.good(parse_text(lines[i], opts), name);
        } catch (const BadFrame& e) {
            out.bad(name, e.what());
        }
    }
    return out.finish();
}

/// The shortest decimal that reads back as `v` (as float): 0.3f is written as 0.3.
json number(float v) {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf), v);
    *res.ptr = '\0';
    return json(std::strtod(buf, nullptr));
}

json flat(const std::vector<Keypoint>& kps) {
    json a = json::array();
    for (const auto& k : kps) {
        a.push_back(number(k.x));
        a.push_back(number(k.y));
        a.push_back(number(k.c));
    }
    return a;
}

void check_count(const std::vector<Keypoint>& v, std::initializer_list<std::size_t> ok, const char* part,
                 std::size_t frame, std::size_t person) {
    if (v.empty() || std::find(ok.begin(), ok.end(), v.size()) != ok.end()) return;
    std::string expected;
    for (auto n : ok) expected += (expected.empty() ? "" : " or ") + std::to_string(n);
    throw DataError("write_keypoints: frame " + std::to_string(frame) + " person " + std::to_string(person) + ": " +
                    part + " has " + std::to_string(v.size()) + " keypoints; expected " + expected + " or none");
}

json frame_json(const PoseFrame& f, std::size_t index) {
    json j;
    j["version"] = 1.3;
    if (f.width > 0 && f.height > 0) {
        j["canvas_width"] = f.width;
        j["canvas_height"] = f.height;
    }
    json people = json::array();
    for (std::size_t i = 0; i < f.people.size(); ++i) {
        const Person& p = f.people[i];
        check_count(p.body, {kBody18}, "body", index, i);
        check_count(p.hand_left, {kHand}, "hand_left", index, i);
        check_count(p.hand_right, {kHand}, "hand_right", index, i);
        check_count(p.face, {68, 70}, "face", index, i);
        check_count(p.feet, {kFeet}, "feet", index, i);
        json o;
        o["person_id"] = json::array({-1});
        if (!p.feet.empty()) {
            // BODY_25 keeps the feet: 0-7, MidHip (unknown: 0,0,0), 8-17, feet.
            std::vector<Keypoint> b25(p.body.empty() ? std::vector<Keypoint>(kBody18) : p.body);
            b25.insert(b25.begin() + 8, Keypoint{});
            b25.insert(b25.end(), p.feet.begin(), p.feet.end());
            o["pose_keypoints_2d"] = flat(b25);
        } else {
            o["pose_keypoints_2d"] = flat(p.body);
        }
        o["face_keypoints_2d"] = flat(p.face);
        o["hand_left_keypoints_2d"] = flat(p.hand_left);
        o["hand_right_keypoints_2d"] = flat(p.hand_right);
        people.push_back(std::move(o));
    }
    j["people"] = std::move(people);
    return j;
}

}  // namespace

PoseSequence read_keypoints(const fs::path& dir_or_jsonl, const KeypointReadOptions& opts) {
    if (opts.canvas_width < 0 || opts.canvas_height < 0)
        throw ConfigError("KeypointReadOptions: canvas_width/canvas_height must be >= 0 (0 = unknown)");
    std::error_code ec;
    if (fs::is_directory(dir_or_jsonl, ec)) return read_dir(dir_or_jsonl, opts);
    if (!fs::exists(dir_or_jsonl, ec))
        throw DataError("keypoints " + dir_or_jsonl.string() +
                        ": no such file or directory (expected a directory of OpenPose JSON files or a .jsonl file)");
    return read_jsonl(dir_or_jsonl, opts);
}

void write_keypoints_dir(const fs::path& dir, const PoseSequence& seq) {
    fs::create_directories(dir);
    std::vector<std::string> names;
    for (std::size_t i = 0; i < seq.frames.size(); ++i) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "frame_%06zu_keypoints.json", i);
        names.emplace_back(buf);
    }
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() != ".json") continue;
        if (std::find(names.begin(), names.end(), e.path().filename().string()) == names.end())
            throw DataError("write_keypoints_dir: " + dir.string() + " already holds " + e.path().filename().string() +
                            ", which would be read as an extra frame; write into an empty directory");
    }
    for (std::size_t i = 0; i < seq.frames.size(); ++i)
        write_file_atomic(dir / names[i], frame_json(seq.frames[i], i).dump() + "\n");
}

void write_keypoints_jsonl(const fs::path& file, const PoseSequence& seq) {
    std::string text;
    for (std::size_t i = 0; i < seq.frames.size(); ++i) text += frame_json(seq.frames[i], i).dump() + "\n";
    if (file.has_parent_path()) fs::create_directories(file.parent_path());
    write_file_atomic(file, text);
}

Person from_coco_wholebody(const std::vector<Keypoint>& kp) {
    if (kp.size() != 133)
        throw DataError("from_coco_wholebody: expected 133 COCO-WholeBody keypoints, got " + std::to_string(kp.size()));
    // ref: vace/annotators/dwpose/wholebody.py Wholebody.__call__ (neck, then mmpose -> openpose order)
    Keypoint neck{(kp[5].x + kp[6].x) / 2, (kp[5].y + kp[6].y) / 2, 0.0f};
    neck.c = (double(kp[5].c) > 0.3 && double(kp[6].c) > 0.3) ? 1.0f : 0.0f;
    // OpenPose-18 index -> COCO-WholeBody index (-1 = the neck).
    static constexpr int kFromCoco[18] = {0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3};
    Person p;
    p.body.resize(kBody18);
    for (int i = 0; i < kBody18; ++i) p.body[i] = kFromCoco[i] < 0 ? neck : kp[kFromCoco[i]];
    p.feet.assign(kp.begin() + 17, kp.begin() + 23);
    p.face.assign(kp.begin() + 23, kp.begin() + 91);
    p.hand_left.assign(kp.begin() + 91, kp.begin() + 112);
    p.hand_right.assign(kp.begin() + 112, kp.begin() + 133);
    return p;
}

}  // namespace ipa::pose
