#pragma once

// Builds the training cache (docs/architecture.md §7) from a curated manifest: per row one
// safetensors sample with
//   latents       VAE(reference image, letterboxed) ++ VAE(video)   [16, 1 + T_lat, h, w]
//   vace_context  VACE conditioning of the pose video + reference   [96, 1 + T_lat, h, w]
//   hand_mask     latent hand mask of the video's keypoints          [1, T_lat, h, w]
//   context       umT5 embedding of the prompt (true length)         [L, text_dim]
// and metadata naming the sources and a fingerprint of everything the sample depends on
// (source files' sizes and times, prompt, frames, size, VAE / text encoder files, mask
// options). A sample whose fingerprint differs is stale and rebuilt; a fresh one is kept.
// The video and its keypoints go through the same frame selection (the first `frames`
// frames) and resize + centre crop, so the mask sits on the hands of the cached latents.
//
// Ranks share the work: rank r builds the rows i with i % world == r. After every rank is
// done, one rank writes index.json (write_cache_index). This library uses OpenCV (media,
// pose); the trainer does not link it, ipa-train injects it (train::TrainHooks).

#include <c10/core/Device.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "ipa/data/cache.h"

namespace ipa::prepare {

struct CacheBuildOptions {
    std::filesystem::path manifest;  ///< CSV: id, video, vace_video, vace_reference_image, keypoints, prompt
    std::filesystem::path cache_dir;
    int64_t frames = 81;  ///< 4k+1, the first `frames` frames of each video
    int64_t height = 480, width = 832;
    std::filesystem::path vae;  ///< Wan2.1_VAE.pth (or safetensors spellings)
    std::filesystem::path text_encoder, tokenizer;
    std::string text_dtype = "bf16";  ///< umT5 compute dtype: bf16 (as upstream) | fp32
    int64_t text_len = 512;           ///< prompts are cut to text_len tokens (with EOS)
    int64_t text_dim = 4096;          ///< the DiT's text_dim (checked against the encoder)
    int64_t latent_channels = 16;     ///< the DiT's in_dim (checked against the VAE)
    int64_t vace_channels = 96;       ///< the DiT's vace_in_dim; 0 = plain Wan (no vace_context, vace_video unused)
    bool hand_masks = true;           ///< needs the keypoints column; false = HALO off
    std::string mask_shape = "box";   ///< box | hull
    double mask_padding = 0.25;       ///< fraction of the hand's size added on each side
    bool vae_tiling = false;          ///< spatial tiling of the VAE encode (less memory)
    c10::Device device{c10::kCPU};
    int rank = 0, world = 1;
};

struct CacheBuildReport {
    int64_t rows = 0;   ///< manifest rows of this rank
    int64_t built = 0;  ///< (re)built now
    int64_t fresh = 0;  ///< already cached and up to date
    double seconds = 0;
};

/// The file of a manifest id inside the cache dir (`<id>.safetensors`, or a safe name plus a
/// hash of the id).
std::string cache_file_name(const std::string& id);

/// Builds or refreshes this rank's rows. The VAE and text encoder are loaded only when some
/// row needs building. Each sample is written atomically; on an error (DataError naming the
/// manifest row and the file) the samples written so far stay valid.
CacheBuildReport build_cache_shard(const CacheBuildOptions& options);

/// After every rank's build_cache_shard: checks that every row of the manifest has a fresh
/// sample and writes index.json (rows in manifest order). DataError listing the rows that
/// are missing or stale.
data::CacheIndex write_cache_index(const CacheBuildOptions& options);

}  // namespace ipa::prepare
