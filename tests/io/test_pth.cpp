#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "ipa/core/error.h"
#include "ipa/io/mapped_file.h"
#include "ipa/io/pth.h"
#include "ipa/io/zip_reader.h"
#include "test_util.h"

namespace fs = std::filesystem;
using ipa::CheckpointError;
using ipa::io::PthFile;
using json = nlohmann::json;

namespace {

const fs::path kDir = fs::path(IPA_FIXTURES_DIR) / "pth";

// tmpfs when there is one: the mutation tests rewrite a file thousands of times.
struct PthDir : ipa::test::TempDir {
    PthDir() : ipa::test::TempDir("ipa_pth", /*prefer_tmpfs=*/true) {}
};

const json& expected() {
    static const json j = [] {
        std::ifstream in(kDir / "expected.json");
        return json::parse(in);
    }();
    return j;
}

void write_file(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary);
    out << bytes;
}

std::string pth_error_of(const fs::path& p) {
    try {
        PthFile::open(p);
    } catch (const CheckpointError& e) {
        return e.what();
    }
    return "<no CheckpointError>";
}

// True if `p` lies in a region of this process's address space mapped from `file`.
bool mapped_from(const void* p, const fs::path& file) {
    std::ifstream maps("/proc/self/maps");
    const auto addr = reinterpret_cast<uintptr_t>(p);
    const auto target = fs::canonical(file).string();
    for (std::string line; std::getline(maps, line);) {
        unsigned long lo = 0, hi = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) != 2) continue;
        const auto slash = line.find('/');
        if (addr >= lo && addr < hi && slash != std::string::npos) {
            return line.substr(slash) == target;
        }
    }
    return false;
}

// ---- a minimal zip writer (stored entries), to build archives byte by byte -------------
struct ZipSpec {
    std::string name;
    std::string data;
    uint16_t method = 0;
};

void put16(std::string& s, uint64_t v) {
    for (int i = 0; i < 2; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put32(std::string& s, uint64_t v) {
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put64(std::string& s, uint64_t v) {
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// `pad` bytes of local extra field (torch pads data to 64 bytes the same way); `zip64` writes
// every size and offset as 0xFFFFFFFF with the real values in ZIP64 extra fields and records.
std::string build_zip(const std::vector<ZipSpec>& entries, bool zip64 = false, std::size_t pad = 0,
                      const std::string& comment = "") {
    std::string out, central;
    for (const auto& e : entries) {
        const uint64_t offset = out.size();
        const auto crc = ipa::io::crc32(reinterpret_cast<const uint8_t*>(e.data.data()), e.data.size());
        std::string local_extra;
        if (zip64) {
            put16(local_extra, 1), put16(local_extra, 16);
            put64(local_extra, e.data.size()), put64(local_extra, e.data.size());
        }
        if (pad >= 4) put16(local_extra, 0x4246), put16(local_extra, pad - 4), local_extra.append(pad - 4, 'Z');
        const uint64_t size32 = zip64 ? 0xFFFFFFFFu : e.data.size();
        put32(out, 0x04034b50), put16(out, 45), put16(out, 0), put16(out, e.method);
        put32(out, 0), put32(out, crc), put32(out, size32), put32(out, size32);
        put16(out, e.name.size()), put16(out, local_extra.size());
        out += e.name + local_extra + e.data;

        std::string extra;
        if (zip64) {
            put16(extra, 1), put16(extra, 24);
            put64(extra, e.data.size()), put64(extra, e.data.size()), put64(extra, offset);
        }
        put32(central, 0x02014b50), put16(central, 45), put16(central, 45), put16(central, 0);
        put16(central, e.method), put32(central, 0), put32(central, crc);
        put32(central, size32), put32(central, size32);
        put16(central, e.name.size()), put16(central, extra.size()), put16(central, 0);
        put16(central, 0), put16(central, 0), put32(central, 0);
        put32(central, zip64 ? 0xFFFFFFFFu : offset);
        central += e.name + extra;
    }
    const uint64_t cd_offset = out.size();
    out += central;
    const uint64_t n = entries.size();
    if (zip64) {
        const uint64_t record = out.size();
        put32(out, 0x06064b50), put64(out, 44), put16(out, 45), put16(out, 45);
        put32(out, 0), put32(out, 0), put64(out, n), put64(out, n);
        put64(out, central.size()), put64(out, cd_offset);
        put32(out, 0x07064b50), put32(out, 0), put64(out, record), put32(out, 1);
    }
    put32(out, 0x06054b50), put16(out, 0), put16(out, 0);
    put16(out, zip64 ? 0xFFFF : n), put16(out, zip64 ? 0xFFFF : n);
    put32(out, zip64 ? 0xFFFFFFFFu : central.size()), put32(out, zip64 ? 0xFFFFFFFFu : cd_offset);
    put16(out, comment.size());
    return out + comment;
}

// The entries of a fixture archive, to rebuild it with changes.
std::vector<ZipSpec> entries_of(const fs::path& p) {
    const auto zip = ipa::io::ZipReader::open(ipa::io::MappedFile::open(p));
    std::vector<ZipSpec> out;
    for (const auto& e : zip.entries()) {
        out.push_back({e.name, std::string(reinterpret_cast<const char*>(zip.data(e)), e.size)});
    }
    return out;
}

// ---- a minimal pickle writer (protocol 2 opcodes) -------------------------------------
std::string le32(uint32_t v) {
    std::string s;
    put32(s, v);
    return s;
}
std::string uni(const std::string& s) { return "X" + le32(s.size()) + s; }
std::string global(const std::string& m, const std::string& n) { return "c" + m + "\n" + n + "\n"; }
std::string bin_int(int32_t v) { return "J" + le32(static_cast<uint32_t>(v)); }
std::string ints(const std::vector<int>& v) {
    std::string s = "(";
    for (int i : v) s += bin_int(i);
    return s + "t";
}
const std::string kEmptyHooks = global("collections", "OrderedDict") + ")R";

// The argument tuple of torch._utils._rebuild_tensor_v2 (storage as a persistent id).
std::string rebuild_v2_args(const std::string& storage_class, const std::string& key, int numel, int offset,
                            const std::vector<int>& size, const std::vector<int>& stride) {
    return "((" + uni("storage") + global("torch", storage_class) + uni(key) + uni("cpu") + bin_int(numel) + "tQ" +
           bin_int(offset) + ints(size) + ints(stride) + "\x89" + kEmptyHooks + "t";
}
std::string rebuild_v2(const std::string& storage_class, const std::string& key, int numel, int offset,
                       const std::vector<int>& size, const std::vector<int>& stride) {
    return global("torch._utils", "_rebuild_tensor_v2") +
           rebuild_v2_args(storage_class, key, numel, offset, size, stride) + "R";
}
// `{key: value, ...}` as a whole data.pkl.
std::string dict_pickle(const std::vector<std::pair<std::string, std::string>>& items) {
    std::string s = "\x80\x02}(";
    for (const auto& [k, v] : items) s += uni(k) + v;
    return s + "u.";
}
std::string floats(const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}
// An archive "archive/…" with one data.pkl and the given storages.
std::string torch_zip(const std::string& pkl, const std::vector<std::pair<std::string, std::string>>& storages,
                      std::size_t pad = 0) {
    std::vector<ZipSpec> e{{"archive/data.pkl", pkl}};
    for (const auto& [k, d] : storages) e.push_back({"archive/data/" + k, d});
    e.push_back({"archive/version", "3\n"});
    return build_zip(e, false, pad);
}

// ---- expected.json comparison ---------------------------------------------------------
void expect_matches(const PthFile& f, const json& exp) {
    const auto& want = exp.at("tensors");
    ASSERT_EQ(f.tensors().size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
        const auto& [key, t] = f.tensors()[i];
        const auto& e = want[i];
        SCOPED_TRACE(key);
        EXPECT_EQ(key, e.at("key").get<std::string>());
        EXPECT_EQ(std::string(c10::toString(t.scalar_type())), e.at("dtype").get<std::string>());
        EXPECT_EQ(t.sizes().vec(), e.at("shape").get<std::vector<int64_t>>());
        EXPECT_EQ(t.strides().vec(), e.at("stride").get<std::vector<int64_t>>());
        EXPECT_EQ(t.storage_offset(), e.at("storage_offset").get<int64_t>());
        const auto& values = e.at("values");
        ASSERT_EQ(static_cast<std::size_t>(t.numel()), values.size());
        if (at::isIntegralType(t.scalar_type(), /*includeBool=*/false)) {
            const auto got = t.to(torch::kLong).contiguous().flatten();
            for (std::size_t j = 0; j < values.size(); ++j) {
                EXPECT_EQ(got[j].item<int64_t>(), values[j].get<int64_t>()) << "element " << j;
            }
        } else {
            const auto got = t.to(torch::kDouble).contiguous().flatten();
            for (std::size_t j = 0; j < values.size(); ++j) {
                const double v = values[j].is_boolean() ? values[j].get<bool>() : values[j].get<double>();
                EXPECT_EQ(got[j].item<double>(), v) << "element " << j;  // exact
            }
        }
    }
    EXPECT_EQ(f.skipped(), exp.at("skipped").get<std::vector<std::string>>());
}

class PthFixtures : public ::testing::TestWithParam<std::string> {};

TEST_P(PthFixtures, MatchesTorchExactly) {
    const auto p = kDir / GetParam();
    const auto f = PthFile::open(p);
    EXPECT_EQ(f.path(), p);
    expect_matches(f, expected().at("fixtures").at(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Pth, PthFixtures,
                         ::testing::Values("state_dict_fp32.pth", "dtypes.pth", "views.pth", "parameter.pth",
                                           "nested.pth", "protocol4.pth"),
                         [](const auto& info) { return info.param.substr(0, info.param.find('.')); });

TEST(PthZip, ReadsTorchArchiveAndChecksCrc) {
    const std::string digits = "123456789";
    EXPECT_EQ(ipa::io::crc32(reinterpret_cast<const uint8_t*>(digits.data()), digits.size()),
              0xCBF43926u);  // the standard check value
    const auto zip = ipa::io::ZipReader::open(ipa::io::MappedFile::open(kDir / "views.pth"));
    EXPECT_EQ(zip.names(), (std::vector<std::string>{"views/data.pkl", "views/data/0", "views/data/1", "views/data/2",
                                                     "views/version"}));
    EXPECT_TRUE(zip.contains("views/data/0"));
    EXPECT_FALSE(zip.contains("views/data/9"));
    const auto& e = zip.entry("views/data/0");
    EXPECT_EQ(e.size, 12 * sizeof(float));
    EXPECT_EQ(e.method, 0);
    EXPECT_EQ(e.offset_of_data % 64, 0u);  // torch pads the local extra field: differs from central
    EXPECT_EQ(reinterpret_cast<const float*>(zip.data(e))[11], 11.0f);
    for (const auto& entry : zip.entries()) EXPECT_NO_THROW(zip.verify_crc(entry)) << entry.name;
    try {
        zip.entry("views/nope");
        ADD_FAILURE() << "no error";
    } catch (const CheckpointError& err) {
        EXPECT_NE(std::string(err.what()).find("no entry 'views/nope'"), std::string::npos) << err.what();
    }
}

TEST(PthFile, ViewsAreZeroCopyShareOneStorageAndOutliveTheFile) {
    const auto p = kDir / "views.pth";
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    {
        const auto f = PthFile::open(p);
        tensors = f.tensors();
    }  // the PthFile is gone; the tensors keep the mapping alive
    ASSERT_EQ(tensors.size(), 6u);
    const auto& base = tensors[0].second;
    EXPECT_TRUE(mapped_from(base.data_ptr(), p)) << "data does not point into the mmap of " << p;
    for (int i : {1, 2, 3}) {  // t, slice, row view the same storage as base
        EXPECT_EQ(tensors[i].second.storage().data(), base.storage().data()) << tensors[i].first;
        EXPECT_TRUE(tensors[i].second.is_alias_of(base)) << tensors[i].first;
    }
    EXPECT_EQ(base.storage().nbytes(), 12 * sizeof(float));
    // A write through one view is seen by the others, and never reaches the file (MAP_PRIVATE).
    base[2][1] = 100.0f;                                       // element 9
    EXPECT_EQ(tensors[1].second[1][2].item<float>(), 100.0f);  // t[1][2] == base[2][1]
    EXPECT_EQ(tensors[2].second[1][0].item<float>(), 100.0f);  // slice = base[1:, 1:3]
    EXPECT_EQ(tensors[3].second[1].item<float>(), 100.0f);     // row = base[2]
    EXPECT_EQ(PthFile::open(p).tensors()[0].second[2][1].item<float>(), 9.0f);
}

TEST(PthFile, StateDictMetadataIsIgnoredAndParametersAreTensors) {
    const auto sd = PthFile::open(kDir / "state_dict_fp32.pth");
    EXPECT_TRUE(sd.skipped().empty());
    EXPECT_EQ(sd.tensors().size(), 6u);  // conv/fc weight+bias, norm weight+bias
    const auto params = PthFile::open(kDir / "parameter.pth");
    ASSERT_EQ(params.tensors().size(), 2u);
    EXPECT_EQ(params.tensors()[0].first, "weight");
    EXPECT_FALSE(params.tensors()[0].second.requires_grad());  // data only
}

TEST(PthFile, NestedDictsFlattenAndOtherValuesAreSkipped) {
    const auto f = PthFile::open(kDir / "nested.pth");
    std::vector<std::string> keys;
    for (const auto& [k, t] : f.tensors()) keys.push_back(k);
    EXPECT_EQ(keys, (std::vector<std::string>{"model.layer.w", "model.b", "opt_state.0.exp_avg"}));
    EXPECT_EQ(f.skipped(), (std::vector<std::string>{"step", "name", "lr", "betas", "none", "tags", "blob", "device",
                                                     "dtype", "empty"}));
}

TEST(PthFile, ForbiddenGlobalIsRefusedByName) {
    const auto msg = pth_error_of(kDir / "forbidden_global.pth");
    EXPECT_NE(msg.find("forbidden global 'posix.system'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("forbidden_global.pth:forbidden_global/data.pkl"), std::string::npos) << msg;
    EXPECT_NE(msg.find("loading never executes code"), std::string::npos) << msg;
}

TEST(PthFile, TruncatedLegacyGarbageAndEmptyFilesAreClearErrors) {
    auto msg = pth_error_of(kDir / "truncated.pth");
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated.pth"), std::string::npos) << msg;
    msg = pth_error_of(kDir / "legacy.pth");
    EXPECT_NE(msg.find("legacy torch.save format"), std::string::npos) << msg;
    EXPECT_NE(msg.find("torch >= 1.6"), std::string::npos) << msg;

    PthDir dir;
    write_file(dir.path / "garbage.pth", std::string(300, 'x') + "hello, not a checkpoint");
    msg = pth_error_of(dir.path / "garbage.pth");
    EXPECT_NE(msg.find("not a zip archive"), std::string::npos) << msg;
    write_file(dir.path / "empty.pth", "");
    msg = pth_error_of(dir.path / "empty.pth");
    EXPECT_NE(msg.find("too small for a zip archive"), std::string::npos) << msg;
    msg = pth_error_of(dir.path / "missing.pth");
    EXPECT_NE(msg.find("cannot open"), std::string::npos) << msg;
}

TEST(PthFile, Zip64ArchiveWithCommentReadsTheSame) {
    PthDir dir;
    const auto p = dir.path / "zip64.pth";
    write_file(p, build_zip(entries_of(kDir / "views.pth"), /*zip64=*/true, /*pad=*/40, std::string(1000, 'c')));
    expect_matches(PthFile::open(p), expected().at("fixtures").at("views.pth"));
}

TEST(PthFile, MisalignedStorageIsCopiedCorrectly) {
    PthDir dir;
    const auto p = dir.path / "odd.pth";
    // A first entry of 1 to 3 bytes and no padding leave the float data at an odd offset.
    const auto original = entries_of(kDir / "state_dict_fp32.pth");
    uint64_t offset = 0;
    for (std::size_t n = 1; n < 4 && offset % 4 == 0; ++n) {
        auto entries = original;
        entries.insert(entries.begin(), ZipSpec{"x", std::string(n, '1')});
        write_file(p, build_zip(entries));
        offset = ipa::io::ZipReader::open(ipa::io::MappedFile::open(p)).entry("state_dict_fp32/data/0").offset_of_data;
    }
    ASSERT_NE(offset % 4, 0u);
    const auto f = PthFile::open(p);
    expect_matches(f, expected().at("fixtures").at("state_dict_fp32.pth"));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f.tensors()[0].second.data_ptr()) % 4, 0u);
}

TEST(PthFile, RebuildFromTypeAndParameterWithStateAreAccepted) {
    PthDir dir;
    const auto p = dir.path / "v2.pth";
    // torch >= 1.12 pickles tensors with Python attributes through _rebuild_from_type_v2,
    // torch 2 parameters with state through _rebuild_parameter_with_state.
    const std::string from_type = global("torch._tensor", "_rebuild_from_type_v2") + "(" +
                                  global("torch._utils", "_rebuild_tensor_v2") + global("torch", "Tensor") +
                                  rebuild_v2_args("BFloat16Storage", "0", 2, 0, {2}, {1}) + "}tR";
    const std::string with_state = global("torch._utils", "_rebuild_parameter_with_state") + "(" +
                                   rebuild_v2("BFloat16Storage", "0", 2, 0, {2}, {1}) + "\x88" + kEmptyHooks + "}tR";
    const std::string bf16("\x80\x3f\x00\xc0", 4);  // 1.0, -2.0
    write_file(p, torch_zip(dict_pickle({{"a", from_type}, {"b", with_state}}), {{"0", bf16}}));
    const auto f = PthFile::open(p);
    ASSERT_EQ(f.tensors().size(), 2u);
    for (const auto& [k, v] : f.tensors()) {
        EXPECT_EQ(v.scalar_type(), torch::kBFloat16) << k;
        EXPECT_EQ(v[0].item<float>(), 1.0f) << k;
        EXPECT_EQ(v[1].item<float>(), -2.0f) << k;
    }
}

TEST(PthFile, RebuildTensorV3OverUntypedStorage) {
    // torch 2.x: dtypes TypedStorage lacks are saved as UntypedStorage (numel in bytes) plus
    // an explicit dtype; a supported dtype loads, an unknown one is a clear error.
    PthDir dir;
    const auto p = dir.path / "v3.pth";
    auto v3 = [](const std::string& dtype) {
        return global("torch._utils", "_rebuild_tensor_v3") + "((" + uni("storage") +
               global("torch.storage", "UntypedStorage") + uni("0") + uni("cpu") + bin_int(6) + "tQ" + bin_int(1) +
               ints({2}) + ints({1}) + "\x89" + kEmptyHooks + global("torch", dtype) + "tR";
    };
    const std::string halfs("\x00\x00\x00\x3c\x00\xc0", 6);  // 0, 1.0, -2.0
    write_file(p, torch_zip(dict_pickle({{"h", v3("float16")}}), {{"0", halfs}}, 64));
    const auto f = PthFile::open(p);
    ASSERT_EQ(f.tensors().size(), 1u);
    const auto& h = f.tensors()[0].second;
    EXPECT_EQ(h.scalar_type(), torch::kHalf);
    EXPECT_EQ(h.storage_offset(), 1);
    EXPECT_EQ(h[0].item<float>(), 1.0f);
    EXPECT_EQ(h[1].item<float>(), -2.0f);

    write_file(p, torch_zip(dict_pickle({{"f8", v3("float8_e4m3fn")}}), {{"0", halfs}}));
    const auto msg = pth_error_of(p);
    EXPECT_NE(msg.find("tensor dtype 'torch.float8_e4m3fn' is not supported"), std::string::npos) << msg;
}

TEST(PthFile, MutatedPickleBytesNeverCrash) {
    // Every byte of a real data.pkl replaced by a few values, and every truncation: each
    // archive (with a valid CRC) either loads or fails with a CheckpointError.
    PthDir dir;
    const auto p = dir.path / "m.pth";
    const auto entries = entries_of(kDir / "nested.pth");
    ASSERT_EQ(entries[0].name, "nested/data.pkl");
    const std::string pkl = entries[0].data;
    int failures = 0, loads = 0;
    auto attempt = [&](const std::string& mutated) {
        auto e = entries;
        e[0].data = mutated;
        write_file(p, build_zip(e));
        try {
            PthFile::open(p);
            ++loads;
        } catch (const CheckpointError& err) {
            EXPECT_NE(std::string(err.what()).find("m.pth"), std::string::npos) << err.what();
            ++failures;
        }
    };
    for (std::size_t i = 0; i < pkl.size(); ++i) {
        for (unsigned char b : {0x00, 0xFF, 0x80, static_cast<int>(pkl[i]) ^ 0x01}) {
            std::string m = pkl;
            m[i] = static_cast<char>(b);
            attempt(m);
        }
    }
    for (std::size_t n = 0; n < pkl.size(); ++n) attempt(pkl.substr(0, n));
    EXPECT_GT(failures, static_cast<int>(pkl.size()));  // every truncation fails
    EXPECT_GT(loads, 0);
}

TEST(PthFile, MutatedArchiveBytesNeverCrash) {
    // Every byte of a whole archive (headers, directory, end records, data) replaced: each
    // file either loads or fails with a CheckpointError, and never reads out of bounds.
    PthDir dir;
    const auto p = dir.path / "z.pth";
    std::ifstream in(kDir / "views.pth", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    int failures = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        for (unsigned char b : {0x00, 0xFF, static_cast<int>(bytes[i]) ^ 0x10}) {
            std::string m = bytes;
            m[i] = static_cast<char>(b);
            write_file(p, m);
            try {
                PthFile::open(p);
            } catch (const CheckpointError&) {
                ++failures;
            }
        }
    }
    for (std::size_t n = 0; n < bytes.size(); n += 7) {
        write_file(p, bytes.substr(0, n));
        EXPECT_THROW(PthFile::open(p), CheckpointError) << "truncated to " << n;
    }
    EXPECT_GT(failures, 0);
}

// ---- bad archives and pickles: each a CheckpointError that says what and where ---------
struct PthBadCase {
    const char* name;
    std::function<std::string()> bytes;
    std::vector<const char*> expect;
};

void PrintTo(const PthBadCase& c, std::ostream* os) { *os << c.name; }

class PthBadInput : public ::testing::TestWithParam<PthBadCase> {};

TEST_P(PthBadInput, IsAClearCheckpointError) {
    PthDir dir;
    const auto p = dir.path / "bad.pth";
    write_file(p, GetParam().bytes());
    const auto msg = pth_error_of(p);
    EXPECT_NE(msg.find("bad.pth"), std::string::npos) << msg;
    for (const char* e : GetParam().expect) EXPECT_NE(msg.find(e), std::string::npos) << msg;
}

std::string fixture_with(const std::function<void(std::vector<ZipSpec>&)>& change) {
    auto e = entries_of(kDir / "state_dict_fp32.pth");
    change(e);
    return build_zip(e);
}
std::string with_pkl(const std::string& pkl) { return torch_zip(pkl, {{"0", floats({1, 2})}}); }
const std::string kT = rebuild_v2("FloatStorage", "0", 2, 0, {2}, {1});

INSTANTIATE_TEST_SUITE_P(
    Pth, PthBadInput,
    ::testing::Values(
        PthBadCase{"MissingStorageEntry",
                   [] { return fixture_with([](auto& e) { e.erase(e.begin() + 2); }); },
                   {"tensor 'conv.bias'", "no entry 'state_dict_fp32/data/1'"}},
        PthBadCase{"StorageTooSmall",
                   [] { return fixture_with([](auto& e) { e[1].data.resize(8); }); },
                   {"'state_dict_fp32/data/0' has 8 bytes, expected 16 Float elements"}},
        PthBadCase{"CorruptCrc",
                   [] {
                       auto z = fixture_with([](auto&) {});
                       z[z.find("collections") + 2] = 'X';  // inside data.pkl, after the CRC
                       return z;
                   },
                   {"'state_dict_fp32/data.pkl' is corrupt: CRC-32"}},
        PthBadCase{"CompressedEntry",
                   [] { return fixture_with([](auto& e) { e[0].method = 8; }); },
                   {"'state_dict_fp32/data.pkl' is compressed (method 8), expected stored"}},
        PthBadCase{"DuplicateEntry",
                   [] { return fixture_with([](auto& e) { e.push_back(e[1]); }); },
                   {"'state_dict_fp32/data/0' appears twice"}},
        PthBadCase{"NoDataPkl",
                   [] {
                       return build_zip({{"a/b.txt", "x"}});
                   },
                   {"no '<dir>/data.pkl' entry", "a/b.txt"}},
        PthBadCase{"TwoDataPkl",
                   [] {
                       return build_zip({{"a/data.pkl", "."}, {"b/data.pkl", "."}});
                   },
                   {"several top-level data.pkl entries", "expected exactly one"}},
        PthBadCase{"BigEndian",
                   [] { return fixture_with([](auto& e) {
                            e.push_back({"state_dict_fp32/byteorder", "big"});
                        }); },
                   {"big-endian"}},
        PthBadCase{"CentralDirectoryPastEnd",
                   [] {
                       auto z = build_zip({{"a/data.pkl", "."}});
                       z[z.size() - 6 + 3] = 0x70;  // cd offset's high byte
                       return z;
                   },
                   {"central directory", "runs past the end of the file"}},
        PthBadCase{"LocalHeaderMissing",
                   [] {
                       auto z = build_zip({{"a/data.pkl", "."}});
                       z[0] = 'Q';
                       return z;
                   },
                   {"entry 'a/data.pkl': no local header"}},
        PthBadCase{"Zip64MarkersWithoutLocator",
                   [] {
                       auto z = build_zip({{"a/data.pkl", "."}});
                       for (std::size_t i = 6; i > 2; --i) z[z.size() - i] = '\xff';  // cd offset
                       return z;
                   },
                   {"ZIP64 markers", "no ZIP64 locator"}},
        PthBadCase{"ViewPastStorage",
                   [] {
                       return with_pkl(dict_pickle({{"w", rebuild_v2("FloatStorage", "0", 2, 1, {2}, {1})}}));
                   },
                   {"tensor 'w' (storage_offset 1, size [2], stride [1]) reaches past its storage "
                    "'archive/data/0' of 2 Float elements"}},
        PthBadCase{"RootNotDict",
                   [] { return with_pkl("\x80\x02K\x01."); },
                   {"'archive/data.pkl' holds a Python int, expected a dict"}},
        PthBadCase{"StackUnderflow",
                   [] { return with_pkl("\x80\x02."); },
                   {"bad.pth:archive/data.pkl", "at byte 2", "stack underflow"}},
        PthBadCase{"BadMemoIndex", [] { return with_pkl("\x80\x02}h\x05."); }, {"memo index 5 was never stored"}},
        PthBadCase{"UnknownOpcode",
                   [] { return with_pkl("\x80\x02}\xff."); },
                   {"opcode 0xff", "unknown or unsupported opcode"}},
        PthBadCase{"TextProtocolOpcode",
                   [] { return with_pkl("\x80\x02I1\n."); },
                   {"opcode 0x49 ('I')", "text protocols 0/1 are not supported"}},
        PthBadCase{"AbsurdLength",
                   [] { return with_pkl("\x80\x02X\xff\xff\xff\x7f"); },
                   {"needs 2147483647 bytes of BINUNICODE but only 0 remain"}},
        PthBadCase{"NoStop", [] { return with_pkl("\x80\x02}"); }, {"without a STOP"}},
        PthBadCase{"Protocol6", [] { return with_pkl("\x80\x06}."); }, {"pickle protocol 6 (at most 5 supported)"}},
        PthBadCase{"HugeInteger",
                   [] { return with_pkl("\x80\x02\x8a\x09" + std::string(9, '\1') + "."); },
                   {"integer of 9 bytes does not fit in 64 bits"}},
        PthBadCase{"SetitemOnList",
                   [] { return with_pkl("\x80\x02]K\x01K\x02s."); },
                   {"the target of SETITEM(S) must be a dict, got a list"}},
        PthBadCase{
            "CallAString", [] { return with_pkl(std::string("\x80\x02") + uni("x") + ")R."); }, {"cannot call a str"}},
        PthBadCase{"ForbiddenStackGlobal",
                   [] {
                       return with_pkl(
                           std::string("\x80\x04\x8c\x08"
                                       "builtins\x8c\x04"
                                       "eval\x93."));
                   },
                   {"forbidden global 'builtins.eval'", "refusing to load"}},
        PthBadCase{"UnsupportedStorage",
                   [] {
                       return with_pkl(dict_pickle({{"w", rebuild_v2("QInt8Storage", "0", 2, 0, {2}, {1})}}));
                   },
                   {"unsupported storage type 'torch.QInt8Storage'"}},
        PthBadCase{"BadPersistentId",
                   [] {
                       const auto t = global("torch._utils", "_rebuild_tensor_v2") + "(K\x01Q" + bin_int(0) +
                                      ints({1}) + ints({1}) + "\x89" + kEmptyHooks + "tR";
                       return with_pkl(dict_pickle({{"w", t}}));
                   },
                   {"tensor 'w' in 'archive/data.pkl': persistent id must be a tuple ('storage'"}},
        PthBadCase{"StorageNotPersistent",
                   [] {
                       const auto t = global("torch._utils", "_rebuild_tensor_v2") + "(K\x01" + bin_int(0) + ints({1}) +
                                      ints({1}) + "\x89" + kEmptyHooks + "tR";
                       return with_pkl(dict_pickle({{"w", t}}));
                   },
                   {"tensor 'w'", "the storage argument must be a persistent id, got a int"}},
        PthBadCase{"WrongRebuildArity",
                   [] {
                       return with_pkl(dict_pickle({{"w", global("torch._utils", "_rebuild_tensor_v2") + ")R"}}));
                   },
                   {"tensor 'w'", "torch._utils._rebuild_tensor_v2 takes 6 to 7 arguments, got 0"}},
        PthBadCase{"RebuildCallAsRoot",
                   [] { return with_pkl(global("torch._utils", "_rebuild_tensor_v2") + ")R."); },
                   {"'archive/data.pkl' holds a Python call, expected a dict"}},
        PthBadCase{"CallAType",
                   [] { return with_pkl(global("torch", "FloatStorage") + ")R."); },
                   {"cannot call a global (torch.FloatStorage is a type, not a function)"}},
        PthBadCase{"SizeStrideMismatch",
                   [] {
                       return with_pkl(dict_pickle({{"w", rebuild_v2("FloatStorage", "0", 2, 0, {2}, {1, 1})}}));
                   },
                   {"size has 1 dimensions but stride has 2"}},
        PthBadCase{"DuplicateFlattenedKey",
                   [] {
                       return with_pkl(dict_pickle({{"a.b", kT}, {"a", "}" + uni("b") + kT + "s"}}));
                   },
                   {"key 'a.b' occurs twice"}},
        PthBadCase{
            "BuildOnList", [] { return with_pkl("\x80\x02]}b."); }, {"BUILD (setstate) on a list is not supported"}}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
