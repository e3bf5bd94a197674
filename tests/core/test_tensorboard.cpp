// ipa::TensorBoardWriter against the event file PyTorch's SummaryWriter wrote for the same
// events (tests/fixtures/tensorboard/scalars.tfevents, scripts/gen_tensorboard_fixture.py).

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/core/tensorboard.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using Values = std::vector<std::pair<std::string, double>>;

// The events of scripts/gen_tensorboard_fixture.py.
constexpr double kFirstWallTime = 1767225600.25;
struct Ev {
    int64_t step;
    double wall_time;
    Values values;
};
const std::vector<Ev> kEvents = {
    {0, 1767225601.5, {{"train/loss", 0.6931471805599453}}},
    {1, 1767225602.75, {{"train/loss", 0.5}, {"train/gap", -1.25e-4}, {"train/lr", 3e-5}}},
    {1000, 1767225603.0, {{"train/reward_accuracy", 0.0}}},
    {123456789012, 1767225604.125, {{"x", 1e30}, {"y", -7.0}}},
};

template <class T>
T load(const std::string& s, std::size_t at) {
    T v;
    std::memcpy(&v, s.data() + at, sizeof v);
    return v;
}

/// Splits a TFRecord file into record payloads, checking both CRCs of every record.
std::vector<std::string> read_records(const fs::path& file) {
    const auto bytes = ipa::read_file(file);
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < bytes.size()) {
        EXPECT_LE(at + 12, bytes.size()) << "truncated header at " << at;
        const auto len = load<uint64_t>(bytes, at);
        EXPECT_EQ(load<uint32_t>(bytes, at + 8), ipa::tensorboard::masked_crc32c(bytes.data() + at, 8)) << at;
        EXPECT_LE(at + 16 + len, bytes.size()) << "truncated record at " << at;
        if (at + 16 + len > bytes.size()) break;
        out.push_back(bytes.substr(at + 12, len));
        EXPECT_EQ(load<uint32_t>(bytes, at + 12 + len), ipa::tensorboard::masked_crc32c(out.back().data(), len)) << at;
        at += 16 + len;
    }
    return out;
}

fs::path write_events(const fs::path& dir) {
    ipa::TensorBoardWriter w(dir, kFirstWallTime);
    for (const auto& e : kEvents) w.add_scalars(e.step, e.values, e.wall_time);
    return w.path();
}

// ---- a minimal protobuf reader for the checks ----
struct Field {
    int number = 0, wire = 0;
    uint64_t varint = 0;
    std::string bytes;  // length-delimited payload or the 4/8 fixed bytes
};

uint64_t get_varint(const std::string& s, std::size_t& at) {
    uint64_t v = 0;
    for (int shift = 0; at < s.size(); shift += 7) {
        const auto b = static_cast<unsigned char>(s[at++]);
        v |= uint64_t(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    return v;
}

std::vector<Field> fields(const std::string& msg) {
    std::vector<Field> out;
    for (std::size_t at = 0; at < msg.size();) {
        Field f;
        const auto key = get_varint(msg, at);
        f.number = static_cast<int>(key >> 3), f.wire = static_cast<int>(key & 7);
        const std::size_t n = f.wire == 0 ? 0 : f.wire == 1 ? 8 : f.wire == 5 ? 4 : get_varint(msg, at);
        if (f.wire == 0) f.varint = get_varint(msg, at);
        f.bytes = msg.substr(at, n);
        at += n;
        out.push_back(f);
    }
    return out;
}

TEST(TensorBoard, Crc32cKnownValues) {
    // RFC 3720 B.4 / the usual check value.
    EXPECT_EQ(ipa::tensorboard::crc32c("123456789", 9), 0xe3069283u);
    const std::string zeros(32, '\0');
    EXPECT_EQ(ipa::tensorboard::crc32c(zeros.data(), zeros.size()), 0x8a9136aau);
}

TEST(TensorBoard, SameBytesAsPyTorchSummaryWriter) {
    ipa::test::TempDir tmp;
    const auto ours = read_records(write_events(tmp.path));
    const auto ref = read_records(fs::path(IPA_FIXTURES_DIR) / "tensorboard" / "scalars.tfevents");
    ASSERT_EQ(ours.size(), kEvents.size() + 1);
    ASSERT_EQ(ref.size(), ours.size());
    // Record 0: tensorboard >= 2.x's writer appends source_metadata (Event field 10,
    // SourceMetadata{writer: "tensorboard.summary.writer.event_file_writer"}) after
    // wall_time and file_version; those two fields are byte-identical, field 10 is optional.
    ASSERT_GE(ref[0].size(), ours[0].size());
    EXPECT_EQ(ref[0].substr(0, ours[0].size()), ours[0]);
    const auto extra = fields(ref[0].substr(ours[0].size()));
    ASSERT_EQ(extra.size(), 1u);
    EXPECT_EQ(extra[0].number, 10);
    // Every scalar record (framing, CRCs, protos) is byte-identical.
    for (std::size_t i = 1; i < ours.size(); ++i) EXPECT_EQ(ours[i], ref[i]) << "record " << i;
    const auto a = ipa::read_file(write_events(tmp.path / "again"));
    const auto b = ipa::read_file(fs::path(IPA_FIXTURES_DIR) / "tensorboard" / "scalars.tfevents");
    const std::size_t first_a = 16 + ours[0].size(), first_b = 16 + ref[0].size();
    EXPECT_EQ(a.substr(first_a), b.substr(first_b)) << "the scalar records of the two files";
}

TEST(TensorBoard, RecordsDecode) {
    ipa::test::TempDir tmp;
    const auto path = write_events(tmp.path);
    EXPECT_EQ(path.parent_path(), tmp.path);
    const auto name = path.filename().string();
    EXPECT_EQ(name.rfind("events.out.tfevents.1767225600.", 0), 0u) << name;
    const auto records = read_records(path);
    ASSERT_EQ(records.size(), kEvents.size() + 1);
    const auto first = fields(records[0]);
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(load<double>(first[0].bytes, 0), kFirstWallTime);
    EXPECT_EQ(first[1].bytes, "brain.Event:2");
    for (std::size_t i = 0; i < kEvents.size(); ++i) {
        const auto& e = kEvents[i];
        int64_t step = 0;
        double wall = 0;
        Values got;
        for (const auto& f : fields(records[i + 1])) {
            if (f.number == 1) wall = load<double>(f.bytes, 0);
            if (f.number == 2) step = static_cast<int64_t>(f.varint);
            if (f.number != 5) continue;
            for (const auto& v : fields(f.bytes)) {
                const auto value = fields(v.bytes);
                ASSERT_EQ(value.size(), 2u);
                got.emplace_back(value[0].bytes, load<float>(value[1].bytes, 0));
            }
        }
        EXPECT_EQ(step, e.step);
        EXPECT_EQ(wall, e.wall_time);
        ASSERT_EQ(got.size(), e.values.size());
        for (std::size_t k = 0; k < got.size(); ++k) {
            EXPECT_EQ(got[k].first, e.values[k].first);
            EXPECT_EQ(got[k].second, static_cast<float>(e.values[k].second));
        }
    }
}

TEST(TensorBoard, NegativeStepAndEmptySummary) {
    const auto e = ipa::tensorboard::scalars_event(-1, {}, 0.0);
    // no wall_time (0.0 is proto3's default), step -1 as a 10-byte varint, empty summary
    EXPECT_EQ(e, std::string("\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x2a\x00", 13));
}

TEST(TensorBoard, ErrorsNameThePath) {
    ipa::test::TempDir tmp;
    { std::ofstream(tmp.path / "file") << "x"; }
    EXPECT_CONTAINS(ipa::test::error_of<ipa::Error>([&] { ipa::TensorBoardWriter w(tmp.path / "file" / "tb"); }),
                    (tmp.path / "file" / "tb").string());
    if (::geteuid() != 0) {  // root may write anywhere
        fs::create_directories(tmp.path / "ro");
        fs::permissions(tmp.path / "ro", fs::perms::owner_read | fs::perms::owner_exec);
        EXPECT_CONTAINS(ipa::test::error_of<ipa::Error>([&] { ipa::TensorBoardWriter w(tmp.path / "ro"); }),
                        "cannot create");
        fs::permissions(tmp.path / "ro", fs::perms::owner_all);
    }
}

TEST(TensorBoard, WriteFailureNamesTheFile) {
    ipa::test::TempDir tmp;
    ipa::TensorBoardWriter w(tmp.path, kFirstWallTime);
    // A 128-byte file size limit (SIGXFSZ ignored: the write fails with EFBIG instead).
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small = old;
    small.rlim_cur = 128;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    const auto msg = ipa::test::error_of<ipa::Error>([&] {
        for (int step = 0; step < 10; ++step) w.add_scalars(step, {{"train/loss", 1.0}}, kFirstWallTime);
    });
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    EXPECT_CONTAINS(msg, "cannot write " + w.path().string());
}

}  // namespace
