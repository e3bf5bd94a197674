#pragma once

// The small synthetic curated set of the cache-builder tests (header-only, tests only; the
// test links ipa_curate): 2 clips x 2 candidates, 9 frames of 64x96 as PNG frame directories
// (lossless, reproducible), so a training size of 32x32 exercises resize + centre crop.

#include "ipa/curate/synth.h"

namespace ipa::test {

inline curate::SynthOptions tiny_curated_set_options() {
    curate::SynthOptions so;
    so.clips = 2;
    so.candidates = 2;
    so.frames = 9;
    so.height = 64;
    so.width = 96;
    so.video_ext = "";
    so.seed = 3;
    return so;
}

}  // namespace ipa::test
