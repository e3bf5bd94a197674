#include "ipa/data/cache.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/io/safetensors.h"

namespace ipa::data {
namespace fs = std::filesystem;

void CachedSample::check_shapes(const std::string& where) const {
    auto bad = [&](const std::string& what) { throw DataError(fmt::format("cached sample {}: {}", where, what)); };
    if (!latents.defined() || latents.dim() != 4) {
        bad(fmt::format("latents must be [C, T, h, w], got {}",
                        latents.defined() ? c10::str(latents.sizes()) : "nothing"));
    }
    const int64_t t = latents.size(1), h = latents.size(2), w = latents.size(3);
    if (ref_frames < 0 || ref_frames >= t) bad(fmt::format("ref_frames {} must be in [0, {})", ref_frames, t));
    if (vace_context.defined() && (vace_context.dim() != 4 || vace_context.size(1) != t || vace_context.size(2) != h ||
                                   vace_context.size(3) != w)) {
        bad(fmt::format("vace_context {} does not match latents {} in (T, h, w)", c10::str(vace_context.sizes()),
                        c10::str(latents.sizes())));
    }
    if (hand_mask.defined()) {
        const std::vector<int64_t> expect{1, t - ref_frames, h, w};
        if (hand_mask.sizes().vec() != expect) {
            bad(fmt::format("hand_mask {} must be [1, T - ref_frames, h, w] = [{}]", c10::str(hand_mask.sizes()),
                            fmt::join(expect, ", ")));
        }
    }
    if (!context.defined() || context.dim() != 2 || context.size(0) < 1) {
        bad(fmt::format("context must be [L, text_dim], got {}",
                        context.defined() ? c10::str(context.sizes()) : "nothing"));
    }
    if (latents_loser.defined() && latents_loser.sizes() != latents.sizes()) {
        bad(fmt::format("latents_loser {} must have the winner's shape {}", c10::str(latents_loser.sizes()),
                        c10::str(latents.sizes())));
    }
    if (hand_mask_loser.defined() != (latents_loser.defined() && hand_mask.defined())) {
        bad("a pair has hand_mask_loser exactly when it has hand_mask");
    }
    if (hand_mask_loser.defined() && hand_mask_loser.sizes() != hand_mask.sizes()) {
        bad(fmt::format("hand_mask_loser {} must have hand_mask's shape {}", c10::str(hand_mask_loser.sizes()),
                        c10::str(hand_mask.sizes())));
    }
}

void CachedSample::validate(const std::string& where) const {
    check_shapes(where);
    auto bad = [&](const std::string& what) { throw DataError(fmt::format("cached sample {}: {}", where, what)); };
    for (const auto* t_ : {&latents, &vace_context, &hand_mask, &context, &latents_loser, &hand_mask_loser}) {
        if (t_->defined() && t_->is_floating_point() && !torch::isfinite(*t_).all().item<bool>()) {
            bad("contains NaN or Inf values");
        }
    }
}

void save_cached_sample(const fs::path& file, const CachedSample& s) {
    s.validate(file.string());
    io::NamedTensors t{{"latents", s.latents}, {"context", s.context}};
    if (s.vace_context.defined()) t.emplace_back("vace_context", s.vace_context);
    if (s.hand_mask.defined()) t.emplace_back("hand_mask", s.hand_mask);
    if (s.latents_loser.defined()) t.emplace_back("latents_loser", s.latents_loser);
    if (s.hand_mask_loser.defined()) t.emplace_back("hand_mask_loser", s.hand_mask_loser);
    auto meta = s.meta;
    meta["format"] = kCacheFormat;
    meta["id"] = s.id;
    meta["ref_frames"] = std::to_string(s.ref_frames);
    io::save_safetensors(file, t, meta);
}

CachedSample load_cached_sample(const fs::path& file, bool validate) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) {
        throw DataError(fmt::format("cached sample '{}' does not exist (rebuild the cache?)", file.string()));
    }
    io::SafetensorsFile f = [&] {
        try {
            return io::SafetensorsFile::open(file);
        } catch (const CheckpointError& e) {
            throw DataError(fmt::format("cached sample is corrupt: {}", e.what()));
        }
    }();
    CachedSample s;
    const auto& meta = f.metadata();
    const auto format = meta.count("format") ? meta.at("format") : "";
    if (format != kCacheFormat) {
        throw DataError(
            fmt::format("cached sample '{}' has format '{}', expected '{}' (stale cache? delete it to rebuild)",
                        file.string(), format, kCacheFormat));
    }
    for (const char* need : {"latents", "context"}) {
        if (!f.contains(need))
            throw DataError(fmt::format("cached sample '{}' has no '{}' tensor", file.string(), need));
    }
    s.meta = meta;
    s.id = meta.count("id") ? meta.at("id") : file.stem().string();
    try {
        s.ref_frames = meta.count("ref_frames") ? std::stoll(meta.at("ref_frames")) : 1;
    } catch (const std::exception&) {
        throw DataError(
            fmt::format("cached sample '{}': ref_frames '{}' is not a number", file.string(), meta.at("ref_frames")));
    }
    // Copies: training must not hold every sample's mapping open.
    s.latents = f.tensor("latents").to(torch::kFloat).clone();
    s.context = f.tensor("context").to(torch::kFloat).clone();
    if (f.contains("vace_context")) s.vace_context = f.tensor("vace_context").to(torch::kFloat).clone();
    if (f.contains("hand_mask")) s.hand_mask = f.tensor("hand_mask").to(torch::kFloat).clone();
    if (f.contains("latents_loser")) s.latents_loser = f.tensor("latents_loser").to(torch::kFloat).clone();
    if (f.contains("hand_mask_loser")) s.hand_mask_loser = f.tensor("hand_mask_loser").to(torch::kFloat).clone();
    if (validate)
        s.validate(fmt::format("'{}'", file.string()));
    else
        s.check_shapes(fmt::format("'{}'", file.string()));
    return s;
}

CacheIndex CacheIndex::read(const fs::path& dir) {
    const auto path = dir / "index.json";
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_file(path));
    } catch (const nlohmann::json::exception& e) {
        throw DataError(fmt::format("cache index '{}' is not valid JSON: {}", path.string(), e.what()));
    }
    CacheIndex idx;
    try {
        for (const auto& e : j.at("samples")) {
            idx.entries.push_back({e.at("id").get<std::string>(), e.at("file").get<std::string>(),
                                   e.at("latent_shape").get<std::vector<int64_t>>()});
        }
        if (j.contains("meta")) idx.meta = j.at("meta").get<std::map<std::string, std::string>>();
    } catch (const nlohmann::json::exception& e) {
        throw DataError(fmt::format("cache index '{}' is malformed: {}", path.string(), e.what()));
    }
    return idx;
}

void CacheIndex::write(const fs::path& dir) const {
    nlohmann::json j;
    j["format"] = kCacheFormat;
    j["samples"] = nlohmann::json::array();
    for (const auto& e : entries)
        j["samples"].push_back({{"id", e.id}, {"file", e.file}, {"latent_shape", e.latent_shape}});
    j["meta"] = meta;
    write_file_atomic(dir / "index.json", j.dump(2) + "\n");
}

CacheIndex CacheIndex::scan(const fs::path& dir) {
    CacheIndex idx;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw DataError(fmt::format("cache directory '{}' does not exist", dir.string()));
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() == ".safetensors") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        const auto s = load_cached_sample(f);
        idx.entries.push_back({s.id, f.filename().string(), s.latents.sizes().vec()});
    }
    return idx;
}

Batch collate(const std::vector<CachedSample>& samples) {
    if (samples.empty()) throw DataError("collate: empty batch");
    Batch b;
    b.ref_frames = samples[0].ref_frames;
    std::vector<at::Tensor> lat, vace, mask, ctx, lat_l, mask_l;
    int64_t max_len = 0;
    for (const auto& s : samples) {
        if (s.latents.sizes() != samples[0].latents.sizes() || s.ref_frames != b.ref_frames) {
            throw DataError(
                fmt::format("batch mixes sample '{}' (latents {}, ref_frames {}) with '{}' (latents {}, "
                            "ref_frames {}); use batch_size 1 or samples of one size",
                            s.id, c10::str(s.latents.sizes()), s.ref_frames, samples[0].id,
                            c10::str(samples[0].latents.sizes()), b.ref_frames));
        }
        if (s.vace_context.defined() != samples[0].vace_context.defined() ||
            s.hand_mask.defined() != samples[0].hand_mask.defined() || s.is_pair() != samples[0].is_pair()) {
            throw DataError(fmt::format(
                "batch mixes samples with and without vace_context/hand_mask/loser ('{}', '{}')", s.id, samples[0].id));
        }
        b.ids.push_back(s.id);
        lat.push_back(s.latents);
        if (s.is_pair()) lat_l.push_back(s.latents_loser);
        if (s.hand_mask_loser.defined()) mask_l.push_back(s.hand_mask_loser);
        if (s.vace_context.defined()) vace.push_back(s.vace_context);
        if (s.hand_mask.defined()) mask.push_back(s.hand_mask);
        max_len = std::max(max_len, s.context.size(0));
    }
    for (const auto& s : samples) {
        ctx.push_back(torch::constant_pad_nd(s.context, {0, 0, 0, max_len - s.context.size(0)}));
    }
    b.latents = torch::stack(lat);
    if (!vace.empty()) b.vace_context = torch::stack(vace);
    if (!mask.empty()) b.hand_mask = torch::stack(mask);
    if (!lat_l.empty()) b.latents_loser = torch::stack(lat_l);
    if (!mask_l.empty()) b.hand_mask_loser = torch::stack(mask_l);
    b.context = torch::stack(ctx);
    return b;
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, int rank, int world) {
    std::vector<int64_t> order(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) * 0xBF58476D1CE4E5B9ull + 1);
    for (int64_t i = n - 1; i > 0; --i) {  // Fisher–Yates with our own draw: identical on every platform
        const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
        std::swap(order[i], order[j]);
    }
    // Every rank gets ceil(n / world) samples (the shuffled order wraps around to fill the
    // last round, as torch's DistributedSampler pads), so all ranks agree on epoch boundaries.
    const int64_t per_rank = (n + world - 1) / world;
    std::vector<int64_t> mine;
    for (int64_t k = 0; k < per_rank; ++k) mine.push_back(order[(k * world + rank) % n]);
    return mine;
}

CacheIndex make_synthetic_cache(const fs::path& dir, const SyntheticOptions& o) {
    if (o.samples < 1 || o.video_frames < 1 || o.height < 1 || o.width < 1 || o.text_len < 1 ||
        (o.vace_channels != 0 && o.vace_channels <= o.latent_channels)) {
        throw ConfigError(
            "synthetic cache: samples, frames, sizes and text_len must be positive and "
            "vace_channels 0 or larger than latent_channels");
    }
    fs::create_directories(dir);
    auto gen = at::detail::createCPUGenerator(o.seed);
    const int64_t t = 1 + o.video_frames;
    CacheIndex idx;
    idx.meta = {{"source", "synthetic"}, {"seed", std::to_string(o.seed)}, {"pairs", o.pairs ? "true" : "false"}};
    const auto ys = torch::arange(o.height, torch::kFloat).view({1, o.height, 1});
    const auto xs = torch::arange(o.width, torch::kFloat).view({1, 1, o.width});
    for (int64_t i = 0; i < o.samples; ++i) {
        CachedSample s;
        s.id = fmt::format("synth-{:04d}", i);
        // Smooth latents: low-frequency pattern + small noise, reference frame first.
        const auto base = torch::randn({o.latent_channels, 1, 2, 2}, gen);
        s.latents = torch::upsample_bilinear2d(base.squeeze(1).unsqueeze(0), {o.height, o.width}, false)
                        .squeeze(0)
                        .unsqueeze(1)
                        .repeat({1, t, 1, 1}) +
                    0.3 * torch::randn({o.latent_channels, t, o.height, o.width}, gen);
        // A "hand": a blob moving across the video frames.
        std::vector<at::Tensor> frames;
        for (int64_t f = 0; f < o.video_frames; ++f) {
            const double cy = (o.height - 1) * (0.3 + 0.4 * f / std::max<int64_t>(1, o.video_frames));
            const double cx = (o.width - 1) * (0.6 - 0.3 * f / std::max<int64_t>(1, o.video_frames));
            frames.push_back(((ys - cy).pow(2) + (xs - cx).pow(2) <= 2.5).to(torch::kFloat));
        }
        s.hand_mask = torch::cat(frames, 0).unsqueeze(0);  // [1, T_video, h, w]
        if (o.vace_channels > 0) {
            s.vace_context = torch::cat(
                {s.latents * 0.5, torch::randn({o.vace_channels - o.latent_channels, t, o.height, o.width}, gen) * 0.1},
                0);
        }
        s.context = torch::randn({o.text_len, o.text_dim}, gen);
        if (o.pairs) {  // the loser: the hand region (dilated by one latent pixel) collapsed into noise
            const auto region = torch::cat({torch::zeros({1, 1, o.height, o.width}),
                                            torch::max_pool2d(s.hand_mask.transpose(0, 1), 3, 1, 1).transpose(0, 1)},
                                           1);
            s.latents_loser = s.latents * (1 - region) + torch::randn(s.latents.sizes(), gen) * region;
            s.hand_mask_loser = s.hand_mask.clone();
        }
        s.ref_frames = 1;
        s.meta = {{"source", "synthetic"}};
        const auto file = s.id + ".safetensors";
        save_cached_sample(dir / file, s);
        idx.entries.push_back({s.id, file, s.latents.sizes().vec()});
    }
    idx.write(dir);
    return idx;
}

}  // namespace ipa::data
