#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/mapped_file.h"
#include "ipa/io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using ipa::CheckpointError;
using ipa::io::SafetensorsFile;

namespace {

struct TempDir : ipa::test::TempDir {
    TempDir() : ipa::test::TempDir("ipa_st") {}
};

// A safetensors file from a header text and a data section, built byte by byte.
void write_raw(const fs::path& p, const std::string& header, const std::string& data, int64_t declared_len = -1) {
    std::ofstream out(p, std::ios::binary);
    const uint64_t n = declared_len >= 0 ? static_cast<uint64_t>(declared_len) : header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xFF));
    out << header << data;
}

std::string error_of(const fs::path& p) {
    try {
        SafetensorsFile::open(p);
    } catch (const CheckpointError& e) {
        return e.what();
    }
    return "<no CheckpointError>";
}

TEST(Safetensors, ReadsHandBuiltFileWithMetadata) {
    TempDir dir;
    const auto p = dir.path / "a.safetensors";
    // Two F32 values 1.5, -2 and one I16 value 7, little-endian.
    const std::string data("\x00\x00\xc0\x3f\x00\x00\x00\xc0\x07\x00", 10);
    write_raw(p,
              R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("n":{"dtype":"I16","shape":[],"data_offsets":[8,10]},)"
              R"("__metadata__":{"format":"pt"}})",
              data);
    const auto f = SafetensorsFile::open(p);
    ASSERT_EQ(f.tensors().size(), 2u);
    EXPECT_EQ(f.tensors()[0].name, "n");  // sorted by name
    EXPECT_EQ(f.metadata().at("format"), "pt");
    const auto w = f.tensor("w");
    EXPECT_EQ(w.scalar_type(), torch::kFloat);
    EXPECT_FLOAT_EQ(w[0].item<float>(), 1.5f);
    EXPECT_FLOAT_EQ(w[1].item<float>(), -2.0f);
    const auto n = f.tensor("n");
    EXPECT_EQ(n.dim(), 0);
    EXPECT_EQ(n.scalar_type(), torch::kShort);
    EXPECT_EQ(n.item<int16_t>(), 7);
    EXPECT_THROW(f.tensor("missing"), CheckpointError);
}

class SafetensorsDtypes : public ::testing::TestWithParam<torch::ScalarType> {};

TEST_P(SafetensorsDtypes, RoundTripIsExact) {
    TempDir dir;
    const auto dtype = GetParam();
    torch::manual_seed(1);
    torch::Tensor t;
    if (dtype == torch::kBool)
        t = torch::rand({3, 5}) > 0.5;
    else if (c10::isFloatingType(dtype))
        t = torch::randn({3, 5}).to(dtype);
    else
        t = torch::randint(-100, 100, {3, 5}).to(dtype);
    if (dtype == torch::kByte) t = torch::randint(0, 255, {3, 5}).to(dtype);
    const auto strided = t.t();  // non-contiguous input must be written correctly
    const auto p = dir.path / "t.safetensors";
    ipa::io::save_safetensors(p, {{"x", strided}, {"empty", torch::empty({0, 4}, dtype)}}, {{"k", "v"}});
    const auto f = SafetensorsFile::open(p);
    const auto back = f.tensor("x");
    EXPECT_EQ(back.scalar_type(), dtype);
    EXPECT_EQ(back.sizes(), strided.sizes());
    EXPECT_TRUE(torch::equal(back, strided));
    EXPECT_EQ(f.tensor("empty").sizes(), (std::vector<int64_t>{0, 4}));
    EXPECT_EQ(f.metadata().at("k"), "v");
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, SafetensorsDtypes,
                         ::testing::Values(torch::kDouble, torch::kFloat, torch::kHalf, torch::kBFloat16, torch::kLong,
                                           torch::kInt, torch::kShort, torch::kChar, torch::kByte, torch::kBool),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

TEST(Safetensors, ViewsAreZeroCopyAndKeepTheMappingAlive) {
    TempDir dir;
    const auto p = dir.path / "z.safetensors";
    ipa::io::save_safetensors(p, {{"a", torch::arange(1000, torch::kFloat)}});
    torch::Tensor view;
    const uint8_t* base = nullptr;
    std::size_t size = 0;
    {
        const auto f = SafetensorsFile::open(p);
        view = f.tensor("a");
        const auto again = f.tensor("a");
        EXPECT_EQ(view.data_ptr(), again.data_ptr());
        const auto mapped = ipa::io::MappedFile::open(p);  // independent mapping for bounds
        size = mapped->size();
        base = static_cast<const uint8_t*>(view.data_ptr());
        (void)base;
    }
    // The file object is gone; the view still reads the mapped data.
    EXPECT_EQ(view[999].item<float>(), 999.0f);
    EXPECT_GT(size, 4000u);
    // Writes to a view stay private (copy-on-write), never reach the file.
    view[0] = 42.0f;
    EXPECT_EQ(SafetensorsFile::open(p).tensor("a")[0].item<float>(), 0.0f);
}

TEST(Safetensors, Float8IsDecodedToFloat32) {
    TempDir dir;
    const auto p = dir.path / "f8.safetensors";
    // E4M3FN: 0x38 = 1.0, 0xC0 = -2.0, 0x7E = 448 (max), 0x01 = 2^-9, 0x7F = NaN.
    // E5M2:   0x3C = 1.0, 0x7B = 57344 (max), 0x7C = inf, 0x01 = 2^-16.
    const std::string data("\x38\xc0\x7e\x01\x7f\x3c\x7b\x7c\x01", 9);
    write_raw(p,
              R"({"a":{"dtype":"F8_E4M3","shape":[5],"data_offsets":[0,5]},)"
              R"("b":{"dtype":"F8_E5M2","shape":[4],"data_offsets":[5,9]}})",
              data);
    const auto f = SafetensorsFile::open(p);
    const auto a = f.tensor("a");
    EXPECT_EQ(a.scalar_type(), torch::kFloat);
    EXPECT_EQ(a[0].item<float>(), 1.0f);
    EXPECT_EQ(a[1].item<float>(), -2.0f);
    EXPECT_EQ(a[2].item<float>(), 448.0f);
    EXPECT_EQ(a[3].item<float>(), std::ldexp(1.0f, -9));
    EXPECT_TRUE(std::isnan(a[4].item<float>()));
    const auto b = f.tensor("b");
    EXPECT_EQ(b[0].item<float>(), 1.0f);
    EXPECT_EQ(b[1].item<float>(), 57344.0f);
    EXPECT_TRUE(std::isinf(b[2].item<float>()));
    EXPECT_EQ(b[3].item<float>(), std::ldexp(1.0f, -16));
    // Every E4M3 code round-trips through the encoder used for fixtures.
    for (int c = 0; c < 256; ++c) {
        if ((c & 0x7F) == 0x7F) continue;  // NaNs
        float v;
        const auto byte = static_cast<uint8_t>(c);
        ipa::io::decode_float8(&byte, &v, 1, ipa::io::StoredDType::F8_E4M3);
        EXPECT_EQ(ipa::io::encode_float8(v, ipa::io::StoredDType::F8_E4M3), byte) << c;
    }
}

struct BadCase {
    const char* name;
    std::string header;
    std::string data;
    int64_t declared_len;
    const char* expect;
};

class SafetensorsBadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(SafetensorsBadInput, IsAClearCheckpointError) {
    TempDir dir;
    const auto& c = GetParam();
    const auto p = dir.path / "bad.safetensors";
    write_raw(p, c.header, c.data, c.declared_len);
    const auto msg = error_of(p);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "message: " << msg;
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << "message: " << msg;
}

const std::string k8(8, '\0');
INSTANTIATE_TEST_SUITE_P(
    Cases, SafetensorsBadInput,
    ::testing::Values(
        BadCase{"HeaderPastEnd", R"({})", "", 4096, "runs past the end"},
        BadCase{"AbsurdHeaderLength", R"({})", "", int64_t(1) << 40, "exceeds"},
        BadCase{"NotJson", "this is not json", "", -1, "not valid JSON"},
        BadCase{"NotAnObject", "[1,2,3]", "", -1, "expected an object"},
        BadCase{"OffsetsPastData", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0'),
                -1, "truncated"},
        BadCase{"SizeMismatch", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", k8, -1, "needs 12"},
        BadCase{"Overlap",
                R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                k8, -1, "overlap"},
        BadCase{"Reversed", R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", k8, -1, "reversed"},
        BadCase{"UnknownDtype", R"({"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", k8, -1,
                "unsupported dtype 'F4'"},
        BadCase{"NegativeShape", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", k8, -1, "negative"},
        BadCase{"AbsurdShape", R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", k8, -1,
                "absurd"},
        BadCase{"FloatShape", R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", k8, -1, "non-integer"},
        BadCase{"MissingOffsets", R"({"a":{"dtype":"F32","shape":[2]}})", k8, -1, "no 'data_offsets'"},
        BadCase{"DuplicateNames",
                R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                k8, -1, "duplicate tensor name"},
        BadCase{"BadMetadata", R"({"__metadata__":{"x":1}})", "", -1, "not a string"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Safetensors, TooShortAndMissingFiles) {
    TempDir dir;
    const auto p = dir.path / "short.safetensors";
    { std::ofstream(p, std::ios::binary) << "abc"; }
    EXPECT_NE(error_of(p).find("too short"), std::string::npos);
    EXPECT_NE(error_of(dir.path / "nope.safetensors").find("nope.safetensors"), std::string::npos);
}

TEST(Safetensors, TruncatedCopyOfAValidFileIsRejected) {
    TempDir dir;
    const auto p = dir.path / "full.safetensors";
    ipa::io::save_safetensors(p, {{"a", torch::ones({64})}, {"b", torch::zeros({64})}});
    const auto size = fs::file_size(p);
    for (uint64_t cut : {size - 1, size / 2, uint64_t(12), uint64_t(5)}) {
        const auto q = dir.path / "cut.safetensors";
        fs::copy_file(p, q, fs::copy_options::overwrite_existing);
        fs::resize_file(q, cut);
        EXPECT_THROW(SafetensorsFile::open(q), CheckpointError) << "cut at " << cut;
    }
}

TEST(Safetensors, WriterRejectsDuplicatesAndKeepsOldFileOnFailure) {
    TempDir dir;
    const auto p = dir.path / "w.safetensors";
    ipa::io::save_safetensors(p, {{"a", torch::ones({2})}});
    EXPECT_THROW(ipa::io::save_safetensors(p, {{"a", torch::ones({2})}, {"a", torch::ones({2})}}), CheckpointError);
    EXPECT_THROW(ipa::io::save_safetensors(p, {{"c", torch::ones({2}, torch::kComplexFloat)}}), CheckpointError);
    const auto f = SafetensorsFile::open(p);  // the earlier file is intact
    EXPECT_TRUE(f.contains("a"));
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path)) ++files;
    EXPECT_EQ(files, 1u);  // no temp files left behind
}

// ---- sharded checkpoints ---------------------------------------------------------------

void write_index(const fs::path& p, const std::string& weight_map) {
    std::ofstream(p) << R"({"metadata":{"total_size":48},"weight_map":)" << weight_map << "}";
}

TEST(ShardedCheckpoint, LoadsThroughIndexFileAndDirectory) {
    TempDir dir;
    ipa::io::save_safetensors(dir.path / "model-00001-of-00002.safetensors",
                              {{"blocks.0.w", torch::full({2, 2}, 1.0)}});
    ipa::io::save_safetensors(dir.path / "model-00002-of-00002.safetensors",
                              {{"blocks.1.w", torch::full({2, 2}, 2.0)}, {"head.b", torch::ones({4})}});
    write_index(dir.path / "model.safetensors.index.json", R"({"blocks.0.w":"model-00001-of-00002.safetensors",)"
                                                           R"("blocks.1.w":"model-00002-of-00002.safetensors",)"
                                                           R"("head.b":"model-00002-of-00002.safetensors"})");
    for (const auto& path : {dir.path / "model.safetensors.index.json", dir.path}) {
        const auto ck = ipa::io::Checkpoint::open(path);
        EXPECT_EQ(ck.size(), 3u);
        EXPECT_EQ(ck.names(), (std::vector<std::string>{"blocks.0.w", "blocks.1.w", "head.b"}));
        EXPECT_EQ(ck.get("blocks.1.w")[0][0].item<float>(), 2.0f);
        EXPECT_EQ(ck.files().size(), 2u);
        EXPECT_EQ(ck.metadata().at("total_size"), "48");
    }
}

TEST(ShardedCheckpoint, MissingShardAndWrongShardAreErrors) {
    TempDir dir;
    ipa::io::save_safetensors(dir.path / "a.safetensors", {{"x", torch::ones({1})}});
    write_index(dir.path / "m.safetensors.index.json", R"({"x":"a.safetensors","y":"b.safetensors"})");
    try {
        ipa::io::Checkpoint::open(dir.path);
        FAIL() << "expected CheckpointError";
    } catch (const CheckpointError& e) {
        EXPECT_NE(std::string(e.what()).find("b.safetensors"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    }
    ipa::io::save_safetensors(dir.path / "b.safetensors", {{"z", torch::ones({1})}});
    try {
        ipa::io::Checkpoint::open(dir.path);
        FAIL() << "expected CheckpointError";
    } catch (const CheckpointError& e) {
        EXPECT_NE(std::string(e.what()).find("'y'"), std::string::npos) << e.what();
    }
}

TEST(ShardedCheckpoint, DuplicateTensorAcrossShardsAndEmptyDirectory) {
    TempDir dir;
    ipa::io::save_safetensors(dir.path / "a.safetensors", {{"x", torch::ones({1})}});
    ipa::io::save_safetensors(dir.path / "b.safetensors", {{"x", torch::ones({1})}});
    EXPECT_THROW(ipa::io::Checkpoint::open(dir.path), CheckpointError);
    TempDir empty;
    fs::create_directories(empty.path / "sub");
    EXPECT_THROW(ipa::io::Checkpoint::open(empty.path / "sub"), CheckpointError);
    EXPECT_THROW(ipa::io::Checkpoint::open(empty.path / "nothing.safetensors"), CheckpointError);
    write_index(empty.path / "broken.safetensors.index.json", R"(["not", "a", "map"])");
    EXPECT_THROW(ipa::io::Checkpoint::open(empty.path / "broken.safetensors.index.json"), CheckpointError);
}

}  // namespace
