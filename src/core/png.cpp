// The PNG encoder of ipa/core/plot.h: filtered rows, a zlib stream holding one deflate block
// with the fixed Huffman codes (RFC 1951 3.2.6) and LZ77 matches found through a hash chain,
// Adler-32 (RFC 1950) and the chunk CRC-32 (ISO 3309).

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/core/plot.h"

namespace ipa::plot {
namespace {

// ---- deflate ----

constexpr int kMinMatch = 3, kMaxMatch = 258, kWindow = 32768, kMaxChain = 48;
constexpr int kHashBits = 15;

constexpr std::array<uint16_t, 29> kLengthBase = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                                  31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr std::array<uint8_t, 29> kLengthExtra = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                                  2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr std::array<uint16_t, 30> kDistBase = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                                33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                                1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr std::array<uint8_t, 30> kDistExtra = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                                6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/// Bits in deflate order: values LSB first; Huffman codes MSB first (put_code reverses them).
class BitWriter {
public:
    void put(uint32_t bits, int count) {
        acc_ |= uint64_t(bits) << n_;
        n_ += count;
        while (n_ >= 8) {
            out_ += static_cast<char>(acc_ & 0xff);
            acc_ >>= 8;
            n_ -= 8;
        }
    }
    void put_code(uint32_t code, int len) {
        uint32_t r = 0;
        for (int i = 0; i < len; ++i) r |= ((code >> i) & 1u) << (len - 1 - i);
        put(r, len);
    }
    std::string finish() {
        if (n_ > 0) put(0, 8 - n_);
        return std::move(out_);
    }

private:
    std::string out_;
    uint64_t acc_ = 0;
    int n_ = 0;
};

void put_symbol(BitWriter& w, int s) {  // the fixed literal/length code
    if (s < 144) return w.put_code(0x30 + s, 8);
    if (s < 256) return w.put_code(0x190 + s - 144, 9);
    if (s < 280) return w.put_code(s - 256, 7);
    w.put_code(0xc0 + s - 280, 8);
}

template <std::size_t N>
int code_index(const std::array<uint16_t, N>& base, int value) {  // last base <= value
    int i = 0;
    while (i + 1 < static_cast<int>(N) && base[i + 1] <= value) ++i;
    return i;
}

void put_match(BitWriter& w, int length, int distance) {
    const int li = length == kMaxMatch ? 28 : code_index(kLengthBase, length);
    put_symbol(w, 257 + li);
    w.put(length - kLengthBase[li], kLengthExtra[li]);
    const int di = code_index(kDistBase, distance);
    w.put_code(di, 5);
    w.put(distance - kDistBase[di], kDistExtra[di]);
}

/// LZ77 over a hash chain of 3-byte prefixes: greedy longest match within the window.
class Matcher {
public:
    Matcher(const uint8_t* data, std::size_t size) : d_(data), n_(size), head_(1u << kHashBits, -1), prev_(kWindow) {}

    void insert(std::size_t pos) {
        if (pos + kMinMatch > n_) return;
        const uint32_t h = hash(pos);
        prev_[pos % kWindow] = head_[h];
        head_[h] = static_cast<int64_t>(pos);
    }
    /// Longest match (length, distance) for `pos` among earlier positions; length 0 if none.
    std::pair<int, int> find(std::size_t pos) const {
        if (pos + kMinMatch > n_) return {0, 0};
        const int limit = static_cast<int>(std::min<std::size_t>(kMaxMatch, n_ - pos));
        int best = 0, dist = 0, chain = kMaxChain;
        for (int64_t c = head_[hash(pos)]; c >= 0 && chain-- > 0; c = prev_[c % kWindow]) {
            const auto d = static_cast<int64_t>(pos) - c;
            if (d > kWindow - 1 || d <= 0) break;
            int len = 0;
            while (len < limit && d_[c + len] == d_[pos + len]) ++len;
            if (len > best) best = len, dist = static_cast<int>(d);
            if (best == limit) break;
        }
        return best >= kMinMatch ? std::pair{best, dist} : std::pair{0, 0};
    }

private:
    uint32_t hash(std::size_t p) const {
        const uint32_t v = d_[p] | (d_[p + 1] << 8) | (d_[p + 2] << 16);
        return (v * 2654435761u) >> (32 - kHashBits);
    }
    const uint8_t* d_;
    std::size_t n_;
    std::vector<int64_t> head_, prev_;
};

std::string deflate_fixed(const uint8_t* data, std::size_t size) {
    BitWriter w;
    w.put(1, 1);  // BFINAL
    w.put(1, 2);  // BTYPE 01: fixed Huffman codes
    Matcher m(data, size);
    for (std::size_t pos = 0; pos < size;) {
        const auto [len, dist] = m.find(pos);
        if (len == 0) {
            put_symbol(w, data[pos]);
            m.insert(pos++);
            continue;
        }
        put_match(w, len, dist);
        for (int i = 0; i < len; ++i) m.insert(pos++);
    }
    put_symbol(w, 256);  // end of block
    return w.finish();
}

// ---- PNG ----

void put_be32(std::string& out, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out += static_cast<char>((v >> s) & 0xff);
}

void put_chunk(std::string& png, const char* type, const std::string& data) {
    put_be32(png, static_cast<uint32_t>(data.size()));
    std::string body = std::string(type, 4) + data;
    png += body;
    put_be32(png, crc32(body.data(), body.size()));
}

/// Filter bytes + filtered rows; per row the filter (None, Sub, Up) with the smallest sum of
/// |signed byte|, the usual heuristic.
std::vector<uint8_t> filtered_rows(const Canvas& c) {
    const std::size_t stride = static_cast<std::size_t>(c.width()) * 3;
    const uint8_t* px = c.rgb().data();
    std::vector<uint8_t> out;
    out.reserve((stride + 1) * c.height());
    std::array<std::vector<uint8_t>, 3> cand;
    for (auto& v : cand) v.resize(stride);
    for (int y = 0; y < c.height(); ++y) {
        const uint8_t* row = px + y * stride;
        const uint8_t* up = y > 0 ? row - stride : nullptr;
        std::array<long, 3> cost{};
        for (std::size_t i = 0; i < stride; ++i) {
            cand[0][i] = row[i];
            cand[1][i] = static_cast<uint8_t>(row[i] - (i >= 3 ? row[i - 3] : 0));
            cand[2][i] = static_cast<uint8_t>(row[i] - (up ? up[i] : 0));
            for (int f = 0; f < 3; ++f) cost[f] += std::abs(static_cast<int8_t>(cand[f][i]));
        }
        int best = 0;
        for (int f = 1; f < 3; ++f)
            if (cost[f] < cost[best]) best = f;
        out.push_back(static_cast<uint8_t>(best));
        out.insert(out.end(), cand[best].begin(), cand[best].end());
    }
    return out;
}

}  // namespace

uint32_t crc32(const void* data, std::size_t size, uint32_t crc) {
    static const auto table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    const auto* p = static_cast<const uint8_t*>(data);
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t adler32(const void* data, std::size_t size, uint32_t adler) {
    const auto* p = static_cast<const uint8_t*>(data);
    uint32_t a = adler & 0xffff, b = adler >> 16;
    while (size > 0) {
        const std::size_t n = std::min<std::size_t>(size, 5552);  // no overflow before the modulo
        for (std::size_t i = 0; i < n; ++i) b += a += p[i];
        a %= 65521, b %= 65521;
        p += n, size -= n;
    }
    return (b << 16) | a;
}

std::string zlib_compress(const void* data, std::size_t size) {
    std::string z = "\x78\x01";  // deflate, 32 KiB window, no dictionary; (0x7801 % 31) == 0
    z += deflate_fixed(static_cast<const uint8_t*>(data), size);
    put_be32(z, adler32(data, size));
    return z;
}

std::string encode_png(const Canvas& c) {
    if (c.width() <= 0 || c.height() <= 0) throw Error("png: empty canvas");
    std::string png = "\x89PNG\r\n\x1a\n";
    std::string ihdr;
    put_be32(ihdr, static_cast<uint32_t>(c.width()));
    put_be32(ihdr, static_cast<uint32_t>(c.height()));
    ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, deflate, adaptive filters, no interlace
    put_chunk(png, "IHDR", ihdr);
    const auto rows = filtered_rows(c);
    put_chunk(png, "IDAT", zlib_compress(rows.data(), rows.size()));
    put_chunk(png, "IEND", "");
    return png;
}

void write_png(const std::filesystem::path& path, const Canvas& canvas) {
    const auto png = encode_png(canvas);
    try {
        write_file_atomic(path, png);
    } catch (const std::exception& e) {
        throw DataError("png: cannot write " + path.string() + ": " + e.what());
    }
}

}  // namespace ipa::plot
