#include "ipa/prepare/cache_builder.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include "ipa/core/error.h"
#include "ipa/core/file_names.h"
#include "ipa/core/run_context.h"
#include "ipa/curate/manifest.h"
#include "ipa/io/safetensors.h"
#include "ipa/media/video.h"
#include "ipa/models/t5/text_encoder.h"
#include "ipa/models/vae/loader.h"
#include "ipa/models/vae/model.h"
#include "ipa/models/wan/vace_context.h"
#include "ipa/pose/hand_mask.h"
#include "ipa/pose/keypoints.h"

namespace ipa::prepare {
namespace fs = std::filesystem;

namespace {

/// Bump when the content of a cached sample changes for the same inputs.
constexpr const char* kBuilderVersion = "1";

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// "path size mtime" of a file; a directory lists its entries (names, sizes, times) in order.
std::string file_identity(const fs::path& p) {
    if (p.empty()) return "-";
    std::error_code ec;
    const auto status = fs::status(p, ec);
    if (ec || !fs::exists(status)) return "missing:" + p.string();
    auto stamp = [](const fs::path& f) {
        std::error_code e;
        const auto size = fs::is_regular_file(f, e) ? fs::file_size(f, e) : 0;
        const auto mtime = fs::last_write_time(f, e).time_since_epoch().count();
        return fmt::format("{}:{}", size, mtime);
    };
    if (!fs::is_directory(status)) return p.string() + " " + stamp(p);
    std::vector<std::string> entries;
    for (const auto& e : fs::directory_iterator(p, ec))
        entries.push_back(e.path().filename().string() + " " + stamp(e.path()));
    std::sort(entries.begin(), entries.end());
    return p.string() + "/ {" + fmt::format("{}", fmt::join(entries, ",")) + "}";
}

curate::Manifest read_rows(const CacheBuildOptions& o) {
    if (o.manifest.empty()) throw ConfigError("no manifest to build the training cache from (data.manifest)");
    auto m = curate::read_manifest(o.manifest);
    if (m.rows.empty()) throw DataError(fmt::format("manifest '{}' has no rows", o.manifest.string()));
    return m;
}

/// "manifest.csv row 'id'" for error messages.
std::string where(const CacheBuildOptions& o, const curate::ManifestRow& row) {
    return fmt::format("manifest '{}' row '{}'", o.manifest.string(), row.id);
}

/// The frames a row takes and, for a DPO pair row (`ipa-curate pairs --out`), its loser.
struct RowWindow {
    int64_t start = 0;
    fs::path loser_video, loser_keypoints;  ///< empty for a plain row
    bool pair() const { return !loser_video.empty(); }
};

RowWindow row_window(const CacheBuildOptions& o, const curate::ManifestRow& row) {
    RowWindow w;
    auto number = [&](const char* column, int64_t fallback) {
        const auto v = row.get(column);
        if (v.empty()) return fallback;
        try {
            std::size_t used = 0;
            const auto n = std::stoll(v, &used);
            if (used == v.size() && n >= 0) return static_cast<int64_t>(n);
        } catch (const std::exception&) {
        }
        throw DataError(fmt::format("{}: {} '{}' is not a non-negative integer", where(o, row), column, v));
    };
    w.start = number("start_frame", 0);
    const int64_t frames = number("frames", -1);
    if (frames >= 0 && frames < o.frames) {
        throw DataError(fmt::format(
            "{}: the pair's window has {} frames, data.frames is {} (write the pairs with `ipa-curate pairs "
            "--window {}`)",
            where(o, row), frames, o.frames, o.frames));
    }
    auto path = [&](const char* column) {
        const fs::path p = row.get(column);
        return p.empty() || p.is_absolute() ? p : o.manifest.parent_path() / p;
    };
    w.loser_video = path("loser_video");
    w.loser_keypoints = path("loser_keypoints");
    if (w.pair() && o.hand_masks && w.loser_keypoints.empty()) {
        throw DataError(fmt::format(
            "{}: a pair row needs loser_keypoints for its hand mask (or data.hand_masks: false)", where(o, row)));
    }
    return w;
}

std::string fingerprint_of(const CacheBuildOptions& o, const curate::ManifestRow& row) {
    std::string s =
        fmt::format("{} builder {}; frames {}; size {}x{}; latent {}; vace {}; tiling {}\n", data::kCacheFormat,
                    kBuilderVersion, o.frames, o.height, o.width, o.latent_channels, o.vace_channels, o.vae_tiling);
    s += "video " + file_identity(row.video) + "\n";
    if (o.vace_channels > 0) s += "vace_video " + file_identity(row.vace_video) + "\n";
    s += "reference " + file_identity(row.vace_reference_image) + "\n";
    if (o.hand_masks) {
        s += fmt::format("keypoints {}; mask {} {}\n", file_identity(row.keypoints), o.mask_shape, o.mask_padding);
    }
    s += fmt::format("prompt {} {}\n", row.prompt.size(), row.prompt);
    const auto w = row_window(o, row);
    if (w.start > 0 || w.pair()) {
        s += fmt::format("start {}; loser {}", w.start, file_identity(w.loser_video));
        if (o.hand_masks) s += "; loser keypoints " + file_identity(w.loser_keypoints);
        s += "\n";
    }
    s += "vae " + file_identity(o.vae) + "\n";
    s += fmt::format("text {} {} {} {}; {}\n", o.text_dtype, o.text_len, o.text_dim, file_identity(o.text_encoder),
                     file_identity(o.tokenizer));
    return fmt::format("{:016x}", fnv1a64(s));
}

/// The fingerprint stored in a cached sample, or empty when the file is missing, corrupt or
/// of another format (all of which mean: rebuild).
std::string stored_fingerprint(const fs::path& file, std::vector<int64_t>* latent_shape = nullptr) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) return {};
    try {
        const auto f = io::SafetensorsFile::open(file);
        const auto& meta = f.metadata();
        const auto fmt_it = meta.find("format");
        const auto fp_it = meta.find("fingerprint");
        const auto* lat = f.find("latents");
        if (fmt_it == meta.end() || fmt_it->second != data::kCacheFormat || fp_it == meta.end() || !lat) return {};
        if (latent_shape) *latent_shape = lat->shape;
        return fp_it->second;
    } catch (const Error& e) {
        spdlog::warn("cached sample '{}' cannot be read ({}); it will be rebuilt", file.string(), e.what());
        return {};
    }
}

/// Lazily loaded encoders (only when some row needs building), shared by the rows of a shard.
class Encoders {
public:
    explicit Encoders(const CacheBuildOptions& o) : o_(o) {}

    models::vae::WanVAEImpl& vae() {
        if (!vae_) {
            if (o_.vae.empty()) {
                throw ConfigError("building the training cache needs the VAE (model.vae: Wan2.1_VAE.pth)");
            }
            const auto t0 = std::chrono::steady_clock::now();
            vae_ = models::vae::load_wan_vae(o_.vae, o_.device, c10::kFloat);
            spdlog::info("cache: VAE {} loaded on {} in {:.1f} s", o_.vae.string(), o_.device.str(), since(t0));
        }
        return *vae_;
    }

    at::Tensor encode_video(const at::Tensor& video) {
        // The VACE conditioning of a pose video encodes frames · (1 − mask) with an all-ones
        // mask: an all-zero video of the same shape for every sample. Encode that once.
        const bool zeros = !video.any().item<bool>();
        const auto shape = video.sizes().vec();
        if (zeros) {
            if (const auto it = zero_latents_.find(shape); it != zero_latents_.end()) return it->second;
        }
        models::vae::VaeTiling tiling;
        tiling.enabled = o_.vae_tiling;
        auto z = vae().encode(video.to(o_.device), tiling).cpu();
        if (z.size(0) != o_.latent_channels) {
            throw ConfigError(fmt::format("the VAE '{}' makes {} latent channels, the model takes {}", o_.vae.string(),
                                          z.size(0), o_.latent_channels));
        }
        if (zeros) zero_latents_.emplace(shape, z);
        return z;
    }

    /// [L, text_dim] float32 on the CPU; repeated prompts are encoded once.
    at::Tensor encode_prompt(const std::string& prompt) {
        if (const auto it = prompts_.find(prompt); it != prompts_.end()) return it->second;
        if (!text_) {
            if (o_.text_encoder.empty() || o_.tokenizer.empty()) {
                throw ConfigError(
                    "building the training cache needs the text encoder and tokenizer (model.text_encoder: "
                    "models_t5_umt5-xxl-enc-bf16.pth, model.tokenizer: google/umt5-xxl)");
            }
            const auto t0 = std::chrono::steady_clock::now();
            models::t5::TextEncoderOptions to;
            to.device = o_.device;
            to.dtype = parse_dtype(o_.text_dtype);
            to.text_len = o_.text_len;
            text_ = std::make_unique<models::t5::TextEncoder>(o_.text_encoder, o_.tokenizer, to);
            spdlog::info("cache: text encoder {} loaded on {} in {:.1f} s", o_.text_encoder.string(), o_.device.str(),
                         since(t0));
        }
        auto c = text_->encode({prompt}).at(0).to(torch::kCPU, torch::kFloat32).contiguous();
        if (c.size(1) != o_.text_dim) {
            throw ConfigError(fmt::format("the text encoder '{}' makes {}-dim embeddings, the model takes {}",
                                          o_.text_encoder.string(), c.size(1), o_.text_dim));
        }
        prompts_.emplace(prompt, c);
        return c;
    }

private:
    const CacheBuildOptions& o_;
    std::shared_ptr<models::vae::WanVAEImpl> vae_;
    std::unique_ptr<models::t5::TextEncoder> text_;
    std::map<std::string, at::Tensor> prompts_;
    std::map<std::vector<int64_t>, at::Tensor> zero_latents_;  ///< VAE(zeros) by video shape
};

void require_file(const CacheBuildOptions& o, const curate::ManifestRow& row, const char* column, const fs::path& p) {
    if (p.empty()) {
        throw DataError(fmt::format("{}: the '{}' column is empty", where(o, row), column));
    }
    std::error_code ec;
    if (!fs::exists(p, ec)) {
        throw DataError(fmt::format("{}: {} '{}' does not exist", where(o, row), column, p.string()));
    }
}

/// Frames [start, start + o.frames), resized and centre-cropped to the training size.
at::Tensor read_clip(const CacheBuildOptions& o, const curate::ManifestRow& row, const char* column,
                     const fs::path& path, int64_t start) {
    require_file(o, row, column, path);
    media::VideoReadOptions ro;
    ro.start = start;
    ro.max_frames = o.frames;
    ro.size = std::make_pair(o.height, o.width);
    auto v = media::read_video(path, ro).frames;
    if (v.size(1) < o.frames) {
        const auto from = start > 0 ? fmt::format(" from frame {}", start) : std::string();
        throw DataError(fmt::format("{}: {} '{}' has {} frames{}, data.frames is {}", where(o, row), column,
                                    path.string(), v.size(1), from, o.frames));
    }
    return v;
}

/// Latent hand mask [1, T_lat, h, w] of the row's keypoints, placed like the video's pixels.
at::Tensor latent_hands(const CacheBuildOptions& o, const curate::ManifestRow& row, const fs::path& keypoints,
                        const fs::path& video, int64_t start) {
    require_file(o, row, "keypoints", keypoints);
    auto seq = pose::read_keypoints(keypoints);
    if (static_cast<int64_t>(seq.frames.size()) < start + o.frames) {
        throw DataError(fmt::format("{}: keypoints '{}' have {} frames, the row needs frames {}..{}", where(o, row),
                                    keypoints.string(), seq.frames.size(), start, start + o.frames - 1));
    }
    seq.frames = {seq.frames.begin() + start, seq.frames.begin() + start + o.frames};
    // Keypoints are in the source video's pixels (unless the file names its canvas).
    const auto info = media::probe_video(video);
    for (auto& f : seq.frames) {
        if (f.width <= 0 || f.height <= 0) {
            f.width = info.width;
            f.height = info.height;
        }
    }
    const auto g = media::resize_crop_geometry(info.height, info.width, o.height, o.width);
    pose::HandMaskOptions mo;
    mo.shape = o.mask_shape == "hull" ? pose::HandMaskOptions::Shape::Hull : pose::HandMaskOptions::Shape::Box;
    mo.padding = static_cast<float>(o.mask_padding);
    const auto pixels =
        pose::hand_masks(seq, g.resized_h, g.resized_w, mo).narrow(1, g.top, o.height).narrow(2, g.left, o.width);
    return pose::latent_hand_mask(pixels.contiguous()).unsqueeze(0);
}

data::CachedSample build_sample(const CacheBuildOptions& o, const curate::ManifestRow& row, Encoders& enc,
                                const std::string& fingerprint) {
    data::CachedSample s;
    s.id = row.id;
    const auto w = row_window(o, row);
    const auto video = read_clip(o, row, "video", row.video, w.start);
    std::vector<at::Tensor> refs;
    if (!row.vace_reference_image.empty()) {
        require_file(o, row, "vace_reference_image", row.vace_reference_image);
        refs.push_back(media::letterbox_reference(media::read_image(row.vace_reference_image), o.height, o.width)
                           .unsqueeze(1));  // [3, 1, H, W]
    }
    s.ref_frames = static_cast<int64_t>(refs.size());

    const models::wan::VideoEncoder encode = [&](const at::Tensor& v) { return enc.encode_video(v); };
    std::vector<at::Tensor> ref_latents;
    for (const auto& r : refs) ref_latents.push_back(encode(r));
    auto with_refs = [&](const at::Tensor& clip) {  // reference latents first, then the clip's
        auto parts = ref_latents;
        parts.push_back(encode(clip));
        return torch::cat(parts, 1).contiguous();
    };
    s.latents = with_refs(video);
    if (w.pair()) s.latents_loser = with_refs(read_clip(o, row, "loser_video", w.loser_video, w.start));
    if (o.vace_channels > 0) {
        const auto pose_video = read_clip(o, row, "vace_video", row.vace_video, w.start);
        s.vace_context = models::wan::vace_context(pose_video, {}, refs, encode).contiguous();
        if (s.vace_context.size(0) != o.vace_channels) {
            throw ConfigError(fmt::format("the VACE conditioning has {} channels, the model takes {}",
                                          s.vace_context.size(0), o.vace_channels));
        }
    }
    if (o.hand_masks) {
        s.hand_mask = latent_hands(o, row, row.keypoints, row.video, w.start);
        if (w.pair()) s.hand_mask_loser = latent_hands(o, row, w.loser_keypoints, w.loser_video, w.start);
    }
    s.context = enc.encode_prompt(row.prompt);
    s.meta = {{"fingerprint", fingerprint},
              {"manifest", o.manifest.string()},
              {"video", row.video.string()},
              {"vace_video", o.vace_channels > 0 ? row.vace_video.string() : ""},
              {"vace_reference_image", row.vace_reference_image.string()},
              {"keypoints", o.hand_masks ? row.keypoints.string() : ""},
              {"prompt", row.prompt},
              {"frames", std::to_string(o.frames)},
              {"size", fmt::format("{}x{}", o.height, o.width)},
              {"vae", o.vae.string()},
              {"text_encoder", o.text_encoder.string()},
              {"tokenizer", o.tokenizer.string()},
              {"text_dtype", o.text_dtype},
              {"start_frame", std::to_string(w.start)}};
    if (w.pair()) {
        s.meta["loser_video"] = w.loser_video.string();
        s.meta["loser_keypoints"] = o.hand_masks ? w.loser_keypoints.string() : "";
    }
    if (s.hand_mask.defined()) s.meta["hand_fraction"] = fmt::format("{:.6f}", s.hand_mask.mean().item<double>());
    return s;
}

void check_options(const CacheBuildOptions& o) {
    if (o.frames < 1 || (o.frames - 1) % 4 != 0) throw ConfigError(fmt::format("frames {} is not 4k+1", o.frames));
    if (o.height <= 0 || o.width <= 0 || o.height % 16 || o.width % 16) {
        throw ConfigError(fmt::format("size {}x{} is not a positive multiple of 16", o.height, o.width));
    }
    if (o.mask_shape != "box" && o.mask_shape != "hull") {
        throw ConfigError(fmt::format("mask shape '{}' is not box or hull", o.mask_shape));
    }
    if (o.world < 1 || o.rank < 0 || o.rank >= o.world) {
        throw ConfigError(fmt::format("rank {} of world {}", o.rank, o.world));
    }
}

}  // namespace

std::string cache_file_name(const std::string& id) { return file_name_for_id(id, ".safetensors"); }

CacheBuildReport build_cache_shard(const CacheBuildOptions& o) {
    check_options(o);
    const auto t0 = std::chrono::steady_clock::now();
    const auto m = read_rows(o);
    std::error_code ec;
    fs::create_directories(o.cache_dir, ec);
    if (!fs::is_directory(o.cache_dir, ec)) {
        throw DataError(fmt::format("cannot create the cache directory '{}'", o.cache_dir.string()));
    }
    CacheBuildReport r;
    std::vector<std::size_t> to_build;
    std::vector<std::string> fingerprints(m.rows.size());
    for (std::size_t i = static_cast<std::size_t>(o.rank); i < m.rows.size(); i += static_cast<std::size_t>(o.world)) {
        ++r.rows;
        fingerprints[i] = fingerprint_of(o, m.rows[i]);
        if (stored_fingerprint(o.cache_dir / cache_file_name(m.rows[i].id)) == fingerprints[i]) {
            ++r.fresh;
        } else {
            to_build.push_back(i);
        }
    }
    spdlog::info("cache {}: rank {}/{} has {} rows, {} up to date, {} to build", o.cache_dir.string(), o.rank, o.world,
                 r.rows, r.fresh, to_build.size());
    Encoders enc(o);
    for (std::size_t k = 0; k < to_build.size(); ++k) {
        const auto& row = m.rows[to_build[k]];
        const auto ts = std::chrono::steady_clock::now();
        const auto sample = build_sample(o, row, enc, fingerprints[to_build[k]]);
        const auto file = o.cache_dir / cache_file_name(row.id);
        data::save_cached_sample(file, sample);
        ++r.built;
        const auto hands = sample.meta.count("hand_fraction") ? sample.meta.at("hand_fraction") : "";
        if (o.hand_masks && sample.hand_mask.max().item<float>() <= 0) {
            spdlog::warn("cache: {}: no hand found in its keypoints; HALO gives it no hand weight", where(o, row));
        }
        spdlog::info("cache [{}/{}] {}: latents [{}]{} in {:.1f} s", k + 1, to_build.size(), row.id,
                     fmt::join(sample.latents.sizes(), ", "),
                     hands.empty() ? "" : fmt::format(", hands {:.1f}% of latent positions", 100 * std::stod(hands)),
                     since(ts));
    }
    r.seconds = since(t0);
    return r;
}

data::CacheIndex write_cache_index(const CacheBuildOptions& o) {
    check_options(o);
    const auto m = read_rows(o);
    data::CacheIndex idx;
    std::vector<std::string> problems;
    for (const auto& row : m.rows) {
        data::CacheEntry e;
        e.id = row.id;
        e.file = cache_file_name(row.id);
        const auto fp = stored_fingerprint(o.cache_dir / e.file, &e.latent_shape);
        if (fp.empty()) {
            problems.push_back(fmt::format("'{}' (missing: {})", row.id, e.file));
        } else if (fp != fingerprint_of(o, row)) {
            problems.push_back(fmt::format("'{}' (stale: {})", row.id, e.file));
        } else {
            idx.entries.push_back(std::move(e));
        }
    }
    if (!problems.empty()) {
        const std::size_t shown = std::min<std::size_t>(problems.size(), 10);
        throw DataError(fmt::format(
            "cache '{}': {} of {} manifest rows have no up-to-date sample: {}{}", o.cache_dir.string(), problems.size(),
            m.rows.size(), fmt::join(problems.begin(), problems.begin() + static_cast<std::ptrdiff_t>(shown), ", "),
            shown < problems.size() ? ", …" : ""));
    }
    idx.meta = {{"manifest", o.manifest.string()},
                {"frames", std::to_string(o.frames)},
                {"size", fmt::format("{}x{}", o.height, o.width)},
                {"vae", o.vae.string()},
                {"text_encoder", o.text_encoder.string()}};
    idx.write(o.cache_dir);
    spdlog::info("cache {}: index.json lists {} samples", o.cache_dir.string(), idx.entries.size());
    return idx;
}

}  // namespace ipa::prepare
