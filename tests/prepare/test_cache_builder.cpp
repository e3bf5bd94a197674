// The training-cache builder: curated manifest -> cached samples (VAE latents with the
// reference frame first, VACE context, latent hand masks, text embeddings), freshness,
// sharding, index, errors; and ipa-train's trainer on a cache built from a manifest.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "curated_set.h"
#include "ipa/core/error.h"
#include "ipa/core/run_context.h"
#include "ipa/curate/manifest.h"
#include "ipa/curate/synth.h"
#include "ipa/data/cache.h"
#include "ipa/io/safetensors.h"
#include "ipa/media/video.h"
#include "ipa/models/t5/text_encoder.h"
#include "ipa/models/vae/loader.h"
#include "ipa/models/vae/model.h"
#include "ipa/models/wan/vace_context.h"
#include "ipa/pose/hand_mask.h"
#include "ipa/pose/keypoints.h"
#include "ipa/prepare/cache_builder.h"
#include "ipa/train/config.h"
#include "ipa/train/trainer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ipa::prepare;
using ipa::test::error_of;

namespace {

const fs::path kSource = IPA_SOURCE_DIR;
const fs::path kFixtures = IPA_FIXTURES_DIR;

// Tiny tensors: one intra-op thread is much faster than two spinning threads here.
const bool kSingleThread = [] {
    at::set_num_threads(1);
    return true;
}();

/// The synthetic curated set (tests/common/curated_set.h) shared by the tests of this file; built once.
const fs::path& synth_dir() {
    struct Set {
        fs::path dir = fs::temp_directory_path() / ("ipa_prepare_synth_" + std::to_string(::getpid()));
        Set() {
            fs::remove_all(dir);
            ipa::curate::synth_dataset(dir, ipa::test::tiny_curated_set_options());
        }
        ~Set() {
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    };
    static const Set set;
    return set.dir;
}

/// A copy of the synthetic manifest inside `dir` (so tests can edit it).
fs::path manifest_copy(const fs::path& dir) {
    auto m = ipa::curate::read_manifest(synth_dir() / "candidates.csv");
    const fs::path out = dir / "train.csv";
    ipa::curate::write_manifest(out, m);
    return out;
}

CacheBuildOptions tiny_options(const fs::path& dir) {
    CacheBuildOptions o;
    o.manifest = manifest_copy(dir);
    o.cache_dir = dir / "cache";
    o.frames = 5;
    o.height = 32;
    o.width = 32;
    o.vae = kFixtures / "vae" / "tiny.weights.pth";
    o.text_encoder = kFixtures / "t5" / "tiny_umt5.pth";
    o.tokenizer = kFixtures / "t5";
    o.text_dtype = "fp32";
    o.text_len = 16;
    o.text_dim = 32;
    o.latent_channels = 16;
    o.vace_channels = 96;
    return o;
}

std::map<std::string, fs::file_time_type> mtimes(const fs::path& cache) {
    std::map<std::string, fs::file_time_type> out;
    for (const auto& e : fs::directory_iterator(cache))
        out[e.path().filename().string()] = fs::last_write_time(e.path());
    return out;
}

}  // namespace

TEST(CacheBuilder, SamplesHoldReferenceFirstLatentsVaceContextHandsAndText) {
    ipa::test::TempDir dir("ipa_prepare");
    const auto o = tiny_options(dir.path);
    const auto r = build_cache_shard(o);
    EXPECT_EQ(r.rows, 4);
    EXPECT_EQ(r.built, 4);
    EXPECT_EQ(r.fresh, 0);
    const auto idx = write_cache_index(o);
    const auto m = ipa::curate::read_manifest(o.manifest);
    ASSERT_EQ(idx.entries.size(), m.rows.size());
    for (std::size_t i = 0; i < m.rows.size(); ++i) EXPECT_EQ(idx.entries[i].id, m.rows[i].id);  // manifest order
    EXPECT_EQ(idx.entries[0].latent_shape, (std::vector<int64_t>{16, 3, 4, 4}));
    EXPECT_EQ(ipa::data::CacheIndex::read(o.cache_dir).entries.size(), 4u);

    // Recompute row 1 from the parts (the library's own VAE, T5, media and pose functions).
    const auto& row = m.rows[1];
    const auto s = ipa::data::load_cached_sample(o.cache_dir / cache_file_name(row.id));
    EXPECT_EQ(s.id, row.id);
    EXPECT_EQ(s.ref_frames, 1);
    auto vae = ipa::models::vae::load_wan_vae(o.vae);
    ipa::media::VideoReadOptions ro;
    ro.max_frames = 5;
    ro.size = std::make_pair(int64_t{32}, int64_t{32});
    const auto video = ipa::media::read_video(row.video, ro).frames;
    const auto ref =
        ipa::media::letterbox_reference(ipa::media::read_image(row.vace_reference_image), 32, 32).unsqueeze(1);
    const auto expect_latents = torch::cat({vae->encode(ref), vae->encode(video)}, 1);
    ASSERT_EQ(s.latents.sizes(), expect_latents.sizes());
    EXPECT_TRUE(torch::equal(s.latents, expect_latents));
    const auto pose_video = ipa::media::read_video(row.vace_video, ro).frames;
    const auto expect_vace =
        ipa::models::wan::vace_context(pose_video, {}, {ref}, [&](const at::Tensor& v) { return vae->encode(v); });
    EXPECT_TRUE(torch::equal(s.vace_context, expect_vace));
    EXPECT_EQ(s.vace_context.sizes(), (c10::IntArrayRef{96, 3, 4, 4}));

    ipa::models::t5::TextEncoderOptions to;
    to.dtype = torch::kFloat32;
    to.text_len = 16;
    ipa::models::t5::TextEncoder te(o.text_encoder, o.tokenizer, to);
    const auto ctx = te.encode({row.prompt}).at(0);
    EXPECT_TRUE(torch::equal(s.context, ctx));
    EXPECT_EQ(s.meta.at("prompt"), row.prompt);
    EXPECT_EQ(s.meta.at("video"), row.video.string());

    // Hand mask: keypoints moved by hand into the 32x32 crop of the 64x96 frames
    // (scale max(32/96, 32/64) = 1/2 -> 32x48, crop 8 columns on the left).
    auto seq = ipa::pose::read_keypoints(row.keypoints);
    seq.frames.resize(5);
    for (auto& f : seq.frames) {
        const double sx = 0.5, sy = 0.5;
        for (auto& p : f.people) {
            for (auto* hand : {&p.hand_left, &p.hand_right}) {
                for (auto& k : *hand) {
                    k.x = static_cast<float>(k.x * sx - 8);
                    k.y = static_cast<float>(k.y * sy);
                }
            }
        }
        f.width = 32;
        f.height = 32;
    }
    const auto expect_mask = ipa::pose::latent_hand_mask(ipa::pose::hand_masks(seq, 32, 32)).unsqueeze(0);
    ASSERT_EQ(s.hand_mask.sizes(), (c10::IntArrayRef{1, 2, 4, 4}));
    EXPECT_TRUE(torch::equal(s.hand_mask, expect_mask)) << s.hand_mask << expect_mask;
    EXPECT_GT(s.hand_mask.sum().item<double>(), 0.0);
}

TEST(CacheBuilder, FreshSamplesAreKeptStaleAndCorruptOnesRebuilt) {
    ipa::test::TempDir dir("ipa_prepare");
    auto o = tiny_options(dir.path);
    o.vace_channels = 0;  // plain Wan: faster, and vace_video is not needed
    ASSERT_EQ(build_cache_shard(o).built, 4);
    const auto before = mtimes(o.cache_dir);

    auto again = build_cache_shard(o);
    EXPECT_EQ(again.built, 0);
    EXPECT_EQ(again.fresh, 4);
    EXPECT_EQ(mtimes(o.cache_dir), before);

    // A changed prompt makes that row stale; index.json refuses it until it is rebuilt.
    auto m = ipa::curate::read_manifest(o.manifest);
    m.rows[2].prompt = "a different prompt";
    ipa::curate::write_manifest(o.manifest, m);
    const auto msg = error_of<ipa::DataError>([&] { write_cache_index(o); });
    EXPECT_CONTAINS(msg, "1 of 4 manifest rows");
    EXPECT_CONTAINS(msg, "'" + m.rows[2].id + "' (stale");
    // A truncated sample is rebuilt too.
    const auto victim = o.cache_dir / cache_file_name(m.rows[0].id);
    fs::resize_file(victim, fs::file_size(victim) / 2);
    again = build_cache_shard(o);
    EXPECT_EQ(again.built, 2);
    EXPECT_EQ(again.fresh, 2);
    EXPECT_EQ(ipa::data::load_cached_sample(o.cache_dir / cache_file_name(m.rows[2].id)).meta.at("prompt"),
              "a different prompt");
    EXPECT_EQ(write_cache_index(o).entries.size(), 4u);
    EXPECT_FALSE(ipa::data::load_cached_sample(victim).vace_context.defined());

    // Other settings are part of the fingerprint as well.
    o.mask_padding = 0.5;
    EXPECT_EQ(build_cache_shard(o).built, 4);
}

TEST(CacheBuilder, RanksBuildDisjointSharesAndTheIndexNeedsAll) {
    ipa::test::TempDir dir("ipa_prepare");
    auto o = tiny_options(dir.path);
    o.vace_channels = 0;
    o.hand_masks = false;
    o.world = 2;
    o.rank = 1;
    const auto r1 = build_cache_shard(o);
    EXPECT_EQ(r1.rows, 2);
    EXPECT_EQ(r1.built, 2);
    const auto m = ipa::curate::read_manifest(o.manifest);
    EXPECT_TRUE(fs::exists(o.cache_dir / cache_file_name(m.rows[1].id)));
    EXPECT_FALSE(fs::exists(o.cache_dir / cache_file_name(m.rows[0].id)));
    EXPECT_CONTAINS(error_of<ipa::DataError>([&] { write_cache_index(o); }), "(missing: ");
    o.rank = 0;
    EXPECT_EQ(build_cache_shard(o).built, 2);
    const auto idx = write_cache_index(o);
    EXPECT_EQ(idx.entries.size(), 4u);
    EXPECT_FALSE(ipa::data::load_cached_sample(o.cache_dir / idx.entries[0].file).hand_mask.defined());
}

TEST(CacheBuilder, BadInputsNameTheRowAndTheFile) {
    ipa::test::TempDir dir("ipa_prepare");
    auto o = tiny_options(dir.path);
    o.vace_channels = 0;
    auto m = ipa::curate::read_manifest(o.manifest);
    const auto good = m;

    m.rows[1].video = dir.path / "gone.mp4";
    ipa::curate::write_manifest(o.manifest, m);
    auto msg = error_of<ipa::DataError>([&] { build_cache_shard(o); });
    EXPECT_CONTAINS(msg, "row '" + m.rows[1].id + "'");
    EXPECT_CONTAINS(msg, "gone.mp4' does not exist");
    // The row before it was written and stays valid.
    EXPECT_NO_THROW(ipa::data::load_cached_sample(o.cache_dir / cache_file_name(m.rows[0].id)));

    ipa::curate::write_manifest(o.manifest, good);
    o.frames = 13;  // the clips have 9 frames
    msg = error_of<ipa::DataError>([&] { build_cache_shard(o); });
    EXPECT_CONTAINS(msg, "has 9 frames, data.frames is 13");
    o.frames = 5;

    m = good;
    m.rows[0].keypoints.clear();
    ipa::curate::write_manifest(o.manifest, m);
    EXPECT_CONTAINS(error_of<ipa::DataError>([&] { build_cache_shard(o); }), "the 'keypoints' column is empty");

    ipa::curate::write_manifest(o.manifest, good);
    fs::remove_all(o.cache_dir);
    o.vae.clear();
    EXPECT_CONTAINS(error_of<ipa::ConfigError>([&] { build_cache_shard(o); }), "needs the VAE");
    o = tiny_options(dir.path);
    o.vace_channels = 0;
    o.text_dim = 64;
    EXPECT_CONTAINS(error_of<ipa::ConfigError>([&] { build_cache_shard(o); }),
                    "makes 32-dim embeddings, the model takes 64");
    o.manifest = dir.path / "none.csv";
    EXPECT_CONTAINS(error_of<ipa::DataError>([&] { build_cache_shard(o); }), "none.csv");
}

TEST(CacheBuilder, TrainerBuildsTheCacheFromTheManifestAndTrains) {
    ipa::test::TempDir dir("ipa_prepare");
    const auto o = tiny_options(dir.path);
    auto cfg = ipa::train::TrainConfig::load(
        kSource / "configs/train/tiny-cpu.yaml",
        {"model.config=" + (kSource / "configs/models/tiny.yaml").string(), "data.manifest=" + o.manifest.string(),
         "data.cache_dir=" + o.cache_dir.string(), "data.synthetic=0", "data.frames=5", "data.size=[32, 32]",
         "model.vae=" + o.vae.string(), "model.text_encoder=" + o.text_encoder.string(),
         "model.tokenizer=" + o.tokenizer.string(), "checkpoint.dir=" + (dir.path / "run").string(), "train.steps=3"});
    ipa::train::TrainHooks hooks;
    hooks.progress = false;
    // Without a builder, a manifest is refused rather than silently ignored.
    EXPECT_CONTAINS(error_of<ipa::ConfigError>([&] { ipa::train::run_training(cfg, ipa::RunContext{}, hooks); }),
                    "cannot build training caches");
    auto options = o;
    options.text_dtype = cfg.model.dtype;
    int built = 0, indexed = 0;
    hooks.build_cache_shard = [&] { built += static_cast<int>(build_cache_shard(options).built); };
    hooks.write_cache_index = [&] {
        write_cache_index(options);
        ++indexed;
    };
    // --cache-only: the cache is built, nothing is trained or written to the run dir.
    hooks.cache_only = true;
    auto r = ipa::train::run_training(cfg, ipa::RunContext{}, hooks);
    EXPECT_EQ(built, 4);
    EXPECT_EQ(indexed, 1);
    EXPECT_EQ(r.cached_samples, 4);
    EXPECT_TRUE(r.history.empty());
    EXPECT_FALSE(fs::exists(dir.path / "run"));
    // The real run reuses the fresh samples.
    hooks.cache_only = false;
    r = ipa::train::run_training(cfg, ipa::RunContext{}, hooks);
    EXPECT_EQ(built, 4);
    EXPECT_EQ(indexed, 2);
    ASSERT_EQ(r.history.size(), 3u);
    for (const auto& h : r.history) EXPECT_TRUE(std::isfinite(h.loss));
    EXPECT_EQ(ipa::data::CacheIndex::read(o.cache_dir).entries.size(), 4u);
}

// A DPO pair row (ipa-curate pairs --out): winner and loser over the same window, the
// conditioning once, each one's hand mask — every part the same as a plain row of that video
// over that window would hold.
TEST(CacheBuilder, PairRowsHoldWinnerAndLoserOverTheirWindow) {
    ipa::test::TempDir dir("ipa_prepare");
    auto o = tiny_options(dir.path);
    auto m = ipa::curate::read_manifest(o.manifest);
    const auto& w = m.rows[0];
    const auto& l = m.rows[1];
    ASSERT_EQ(w.get("group"), l.get("group"));
    ipa::curate::Manifest pairs;
    pairs.columns = ipa::curate::standard_columns();
    for (const char* c : {"start_frame", "frames", "loser_video", "loser_keypoints"}) pairs.columns.push_back(c);
    auto row = w;
    row.id = w.id + "~" + l.id + "@4";
    row.extra = {{"start_frame", "4"},
                 {"frames", "5"},
                 {"loser_video", l.video.string()},
                 {"loser_keypoints", l.keypoints.string()}};
    pairs.rows.push_back(row);
    // The same window of each video as plain rows, for comparison.
    auto plain_w = w, plain_l = l;
    plain_w.extra = plain_l.extra = {{"start_frame", "4"}};
    plain_l.vace_video = w.vace_video;
    plain_l.vace_reference_image = w.vace_reference_image;
    plain_l.prompt = w.prompt;
    pairs.rows.push_back(plain_w);
    pairs.rows.push_back(plain_l);
    o.manifest = dir.path / "pairs.csv";
    ipa::curate::write_manifest(o.manifest, pairs);
    ASSERT_EQ(build_cache_shard(o).built, 3);
    write_cache_index(o);
    const auto pair = ipa::data::load_cached_sample(o.cache_dir / cache_file_name(row.id));
    const auto sw = ipa::data::load_cached_sample(o.cache_dir / cache_file_name(w.id));
    const auto sl = ipa::data::load_cached_sample(o.cache_dir / cache_file_name(l.id));
    ASSERT_TRUE(pair.is_pair());
    EXPECT_TRUE(torch::equal(pair.latents, sw.latents));
    EXPECT_TRUE(torch::equal(pair.latents_loser, sl.latents));
    EXPECT_TRUE(torch::equal(pair.vace_context, sw.vace_context));
    EXPECT_TRUE(torch::equal(pair.context, sw.context));
    EXPECT_TRUE(torch::equal(pair.hand_mask, sw.hand_mask));
    EXPECT_TRUE(torch::equal(pair.hand_mask_loser, sl.hand_mask));
    EXPECT_EQ(pair.meta.at("start_frame"), "4");
    // The window really starts at frame 4: the latents differ from the first five frames'.
    auto vae = ipa::models::vae::load_wan_vae(o.vae);
    ipa::media::VideoReadOptions ro;
    ro.start = 4;
    ro.max_frames = 5;
    ro.size = std::make_pair(int64_t{32}, int64_t{32});
    const auto clip = vae->encode(ipa::media::read_video(w.video, ro).frames);
    EXPECT_TRUE(torch::equal(pair.latents.narrow(1, 1, clip.size(1)), clip));

    // A window shorter than data.frames, and a window past the end, are refused by name.
    pairs.rows.resize(1);
    pairs.rows[0].extra["frames"] = "3";
    ipa::curate::write_manifest(o.manifest, pairs);
    EXPECT_CONTAINS(error_of<ipa::DataError>([&] { build_cache_shard(o); }), "--window 5");
    pairs.rows[0].extra["frames"] = "5";
    pairs.rows[0].extra["start_frame"] = "6";
    ipa::curate::write_manifest(o.manifest, pairs);
    EXPECT_CONTAINS(error_of<ipa::DataError>([&] { build_cache_shard(o); }), "from frame 6");
}
