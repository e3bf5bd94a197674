#pragma once

// Spatial tiling with blended overlaps for the VAE's encode/decode.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace ipa::models::vae {

/// Spatial tiling of encode/decode. Sizes are in LATENT units (one latent = 8×8 pixels for
/// Wan 2.1): encode cuts the video into tiles of tile·8 pixels every stride·8 pixels and
/// blends the tile latents; decode cuts the latents into tile-sized pieces every stride
/// and blends the decoded pixels. Along each axis tiles start at 0, stride, 2·stride, …
/// and the last one is moved back to end flush with the border (every tile is full size;
/// an axis no longer than `tile` is one tile). Overlaps are blended with a linear ramp of
/// (tile − stride) latents / (tile − stride)·8 pixels on each inner tile side (weights
/// (i+1)/ramp, as DiffSynth-Studio's tiled VAE), the mask of a tile being the minimum of
/// its row and column ramps, normalised by the summed weights. Each tile is a full causal
/// run over all frames with its own feature cache. With `enabled` false, or when a single
/// tile covers the whole frame, the untiled code runs (bit-identical to it).
struct VaeTiling {
    bool enabled = false;
    int64_t tile_h = 34;  ///< latents (DiffSynth's default tile 34×34, stride 18×16)
    int64_t tile_w = 34;
    int64_t stride_h = 18;  ///< latents; 1 ≤ stride ≤ tile
    int64_t stride_w = 16;
    /// ConfigError naming the field for a non-positive size or a stride above the tile.
    void check() const;
};

/// Tile starts along an axis of `length`: 0, stride, 2·stride, … with the last tile moved
/// back to end flush with the border (all tiles `tile` long; {0} when length ≤ tile).
std::vector<int64_t> tile_starts(int64_t length, int64_t tile, int64_t stride);

/// Geometry of one tiled run, in INPUT units of the last two axes; the output grid is the
/// input grid × out_num / out_den (decode: 8 / 1, encode: 1 / 8).
struct TileGrid {
    int64_t tile_h, tile_w, stride_h, stride_w;
    int64_t out_num = 1, out_den = 1;
};

/// Runs `fn` on every tile of `input` [B, C, T, H, W] (a full-size crop, all frames) and
/// blends the results ([B, out_channels, out_frames, h·num/den, w·num/den] each) into one
/// float32 tensor: each tile weighted by the minimum of its row/column ramps ((i+1)/ramp over
/// ramp = (tile − stride)·num/den output positions on inner sides), normalised by the sum of
/// weights. The result (the full output, float32) is accumulated on the input's device, so
/// the tiles themselves may run elsewhere (e.g. a CPU-resident video, tiles on the GPU).
at::Tensor blend_tiles(const at::Tensor& input, int64_t out_channels, int64_t out_frames, const TileGrid& grid,
                       const std::function<at::Tensor(const at::Tensor&)>& fn);

}  // namespace ipa::models::vae
