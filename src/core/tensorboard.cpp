#include "ipa/core/tensorboard.h"

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>

#include "ipa/core/error.h"

namespace fs = std::filesystem;

namespace ipa {
namespace tensorboard {
namespace {

std::array<uint32_t, 256> make_crc32c_table() {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82f63b78u ^ (c >> 1) : c >> 1;  // reflected Castagnoli
        t[i] = c;
    }
    return t;
}

// ---- protobuf wire format (only what Event / Summary / Value need) ----

void put_varint(std::string& out, uint64_t v) {
    while (v >= 0x80) {
        out += static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    out += static_cast<char>(v);
}

void put_key(std::string& out, int field, int wire_type) { put_varint(out, (uint64_t(field) << 3) | wire_type); }

template <class T>
void put_fixed(std::string& out, T v) {  // little-endian fixed32 / fixed64
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // x86-64 and aarch64 Linux are little-endian
    out.append(reinterpret_cast<const char*>(b), sizeof(T));
}

void put_bytes(std::string& out, int field, std::string_view bytes) {
    put_key(out, field, 2);
    put_varint(out, bytes.size());
    out.append(bytes);
}

/// proto3 leaves a double field out when it is +0.0 (bits all zero).
void put_wall_time(std::string& out, double wall_time) {
    uint64_t bits;
    std::memcpy(&bits, &wall_time, sizeof bits);
    if (bits == 0) return;
    put_key(out, 1, 1);
    put_fixed(out, wall_time);
}

std::string summary_value(const std::string& tag, double value) {
    std::string v;
    if (!tag.empty()) put_bytes(v, 1, tag);
    put_key(v, 2, 5);  // simple_value: a oneof member, written even when 0
    put_fixed(v, static_cast<float>(value));
    return v;
}

}  // namespace

uint32_t crc32c(const void* data, std::size_t size, uint32_t crc) {
    static const auto table = make_crc32c_table();
    const auto* p = static_cast<const unsigned char*>(data);
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t masked_crc32c(const void* data, std::size_t size) {
    const uint32_t crc = crc32c(data, size);
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string file_version_event(double wall_time) {
    std::string e;
    put_wall_time(e, wall_time);
    put_bytes(e, 3, "brain.Event:2");
    return e;
}

std::string scalars_event(int64_t step, const std::vector<std::pair<std::string, double>>& values, double wall_time) {
    std::string summary;
    for (const auto& [tag, value] : values) put_bytes(summary, 1, summary_value(tag, value));
    std::string e;
    put_wall_time(e, wall_time);
    if (step != 0) {
        put_key(e, 2, 0);
        put_varint(e, static_cast<uint64_t>(step));  // int64: two's complement, 10 bytes if negative
    }
    put_bytes(e, 5, summary);
    return e;
}

std::string frame_record(const std::string& data) {
    std::string r;
    put_fixed(r, static_cast<uint64_t>(data.size()));
    put_fixed(r, masked_crc32c(r.data(), 8));
    r += data;
    put_fixed(r, masked_crc32c(data.data(), data.size()));
    return r;
}

}  // namespace tensorboard

double unix_time_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

std::string host_name() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
    return buf;
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const fs::path& dir, double wall_time) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error("tensorboard: cannot create the directory " + dir.string() + ": " + ec.message());
    // The name tensorboard's EventFileWriter gives: seconds, host, pid and a per-process count
    // (two writers in one second never share a file).
    static std::atomic<int> count{0};
    path_ = dir / fmt::format("events.out.tfevents.{:010d}.{}.{}.{}", static_cast<long long>(std::floor(wall_time)),
                              host_name(), ::getpid(), count++);
    file_ = std::fopen(path_.c_str(), "ab");
    if (!file_) throw Error("tensorboard: cannot create " + path_.string() + ": " + std::strerror(errno));
    write_record(tensorboard::file_version_event(wall_time));
}

TensorBoardWriter::~TensorBoardWriter() {
    if (file_) std::fclose(file_);
}

void TensorBoardWriter::add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values,
                                    double wall_time) {
    write_record(tensorboard::scalars_event(step, values, wall_time));
}

void TensorBoardWriter::write_record(const std::string& data) {
    const auto record = tensorboard::frame_record(data);
    if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() || std::fflush(file_) != 0)
        throw Error("tensorboard: cannot write " + path_.string() + ": " + std::strerror(errno));
}

}  // namespace ipa
