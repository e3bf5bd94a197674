#pragma once

// The training cache (docs/architecture.md §7): one safetensors file per sample, plus an index.
//   latents       [C, T, h, w]  clean VAE latents, the `ref_frames` reference-image frames first
//   vace_context  [C_v, T, h, w] VACE conditioning (optional for a plain Wan model)
//   hand_mask     [1, T - ref_frames, h, w] latent hand mask in [0, 1] (optional: HALO off)
//   context       [L, text_dim] text embedding (rows up to the prompt's true length)
// A DPO pair sample (docs/architecture.md §6b) adds the loser of the same clip and window;
// the conditioning (vace_context, context) is the winner's and is stored once:
//   latents_loser    [C, T, h, w]  the loser's latents (same reference frames)
//   hand_mask_loser  [1, T - ref_frames, h, w] (present iff hand_mask is)
// Metadata: id, ref_frames, source paths, sizes, model/VAE identity, format version.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ipa::data {

constexpr const char* kCacheFormat = "ipa-cache-v1";

struct CachedSample {
    std::string id;
    at::Tensor latents;
    at::Tensor vace_context;
    at::Tensor hand_mask;
    at::Tensor context;
    at::Tensor latents_loser;    ///< DPO pairs only
    at::Tensor hand_mask_loser;  ///< DPO pairs with hand masks only
    int64_t ref_frames = 1;
    std::map<std::string, std::string> meta;  ///< source paths, sizes, model/VAE identity, …

    bool is_pair() const { return latents_loser.defined(); }
    /// DataError naming `where` if the tensors are inconsistent (shapes; NaN/Inf values).
    void validate(const std::string& where) const;
    /// The shape checks of validate() alone (cheap: no pass over the values).
    void check_shapes(const std::string& where) const;
};

void save_cached_sample(const std::filesystem::path& file, const CachedSample& sample);
/// DataError naming the file on a missing file, missing tensor or bad shape. `validate` =
/// false skips the value checks (the trainer validates each file once, at its first draw).
CachedSample load_cached_sample(const std::filesystem::path& file, bool validate = true);

struct CacheEntry {
    std::string id;
    std::string file;  ///< relative to the cache dir
    std::vector<int64_t> latent_shape;
};

/// `index.json` of a cache directory.
struct CacheIndex {
    std::vector<CacheEntry> entries;
    std::map<std::string, std::string> meta;
    static CacheIndex read(const std::filesystem::path& cache_dir);
    void write(const std::filesystem::path& cache_dir) const;
    /// Scans the directory's *.safetensors sample files (used when index.json is absent).
    static CacheIndex scan(const std::filesystem::path& cache_dir);
};

/// A batch stacked along a new leading dim.
struct Batch {
    std::vector<std::string> ids;
    at::Tensor latents;          ///< [B, C, T, h, w]
    at::Tensor vace_context;     ///< [B, C_v, T, h, w] or undefined
    at::Tensor hand_mask;        ///< [B, 1, T_video, h, w] or undefined
    at::Tensor context;          ///< [B, L_max, text_dim] (zero-padded)
    at::Tensor latents_loser;    ///< [B, C, T, h, w] (DPO pairs) or undefined
    at::Tensor hand_mask_loser;  ///< [B, 1, T_video, h, w] or undefined
    int64_t ref_frames = 1;
};

/// Stacks samples; all must share latent shape, ref_frames and kind (pair or single), else
/// DataError.
Batch collate(const std::vector<CachedSample>& samples);

/// Sample order for one rank: per-epoch seeded shuffle of all indices, the rank's
/// strided share, ceil(n / world) long on every rank (the order wraps around to fill the
/// last round). Pure function of (seed, epoch, rank, world), so resuming reproduces it.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, int rank = 0, int world = 1);

struct SyntheticOptions {
    int64_t samples = 8;
    int64_t latent_channels = 16;
    int64_t vace_channels = 96;
    int64_t video_frames = 2;  ///< latent video frames (after the reference frame)
    int64_t height = 8;        ///< latent height
    int64_t width = 8;
    int64_t text_len = 6;
    int64_t text_dim = 32;
    uint64_t seed = 0;
    /// DPO pairs: each sample also gets a loser — the winner with its "hand" region (and a
    /// margin around it) replaced by noise, i.e. a collapsed hand.
    bool pairs = false;
};

/// Writes a deterministic synthetic cache (smooth latents, a moving "hand" blob in the
/// latent hand mask, VACE context derived from the latents, random text) plus index.json.
/// For tests and the tiny demo until real caching (VAE + text encoder) exists.
CacheIndex make_synthetic_cache(const std::filesystem::path& cache_dir, const SyntheticOptions& options);

}  // namespace ipa::data
