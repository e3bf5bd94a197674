#include "ipa/io/dtype.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "ipa/core/error.h"

namespace ipa::io {
namespace {

struct DTypeInfo {
    StoredDType d;
    const char* name;
    std::size_t size;
    c10::ScalarType loaded;
};

constexpr DTypeInfo kTable[] = {
    {StoredDType::F64, "F64", 8, c10::kDouble},
    {StoredDType::F32, "F32", 4, c10::kFloat},
    {StoredDType::F16, "F16", 2, c10::kHalf},
    {StoredDType::BF16, "BF16", 2, c10::kBFloat16},
    {StoredDType::I64, "I64", 8, c10::kLong},
    {StoredDType::I32, "I32", 4, c10::kInt},
    {StoredDType::I16, "I16", 2, c10::kShort},
    {StoredDType::I8, "I8", 1, c10::kChar},
    {StoredDType::U8, "U8", 1, c10::kByte},
    {StoredDType::BOOL, "BOOL", 1, c10::kBool},
    {StoredDType::F8_E4M3, "F8_E4M3", 1, c10::kFloat},
    {StoredDType::F8_E5M2, "F8_E5M2", 1, c10::kFloat},
};

const DTypeInfo& info(StoredDType d) { return kTable[static_cast<int>(d)]; }

// Value of an 8-bit float with `mbits` mantissa bits and exponent bias `bias`.
float decode_one(uint8_t v, int mbits, int bias, bool e4m3fn) {
    const int ebits = 7 - mbits;
    const bool neg = v & 0x80;
    const int exp = (v >> mbits) & ((1 << ebits) - 1);
    const int man = v & ((1 << mbits) - 1);
    float out;
    if (e4m3fn) {
        if (exp == 0xF && man == 0x7) return std::numeric_limits<float>::quiet_NaN();
    } else if (exp == (1 << ebits) - 1) {
        out = man == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
        return neg ? -out : out;
    }
    if (exp == 0) {
        out = std::ldexp(static_cast<float>(man), 1 - bias - mbits);
    } else {
        out = std::ldexp(static_cast<float>((1 << mbits) | man), exp - bias - mbits);
    }
    return neg ? -out : out;
}

std::array<float, 256> make_table(StoredDType kind) {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) {
        t[i] = kind == StoredDType::F8_E4M3 ? decode_one(static_cast<uint8_t>(i), 3, 7, true)
                                            : decode_one(static_cast<uint8_t>(i), 2, 15, false);
    }
    return t;
}

}  // namespace

std::optional<StoredDType> parse_stored_dtype(const std::string& name) {
    for (const auto& e : kTable) {
        if (name == e.name) return e.d;
    }
    return std::nullopt;
}

const char* stored_dtype_name(StoredDType d) { return info(d).name; }
std::size_t stored_dtype_size(StoredDType d) { return info(d).size; }
c10::ScalarType loaded_scalar_type(StoredDType d) { return info(d).loaded; }

StoredDType stored_dtype_for(c10::ScalarType t) {
    switch (t) {
        case c10::kDouble:
            return StoredDType::F64;
        case c10::kFloat:
            return StoredDType::F32;
        case c10::kHalf:
            return StoredDType::F16;
        case c10::kBFloat16:
            return StoredDType::BF16;
        case c10::kLong:
            return StoredDType::I64;
        case c10::kInt:
            return StoredDType::I32;
        case c10::kShort:
            return StoredDType::I16;
        case c10::kChar:
            return StoredDType::I8;
        case c10::kByte:
            return StoredDType::U8;
        case c10::kBool:
            return StoredDType::BOOL;
        default:
            throw CheckpointError(fmt::format("dtype {} cannot be stored in safetensors", c10::toString(t)));
    }
}

void decode_float8(const uint8_t* src, float* dst, std::size_t n, StoredDType kind) {
    static const auto e4m3 = make_table(StoredDType::F8_E4M3);
    static const auto e5m2 = make_table(StoredDType::F8_E5M2);
    const auto& table = kind == StoredDType::F8_E4M3 ? e4m3 : e5m2;
    for (std::size_t i = 0; i < n; ++i) dst[i] = table[src[i]];
}

uint8_t encode_float8(float value, StoredDType kind) {
    // Brute force nearest (ties to even code) over the 256 codes: used for fixtures only.
    static const auto e4m3 = make_table(StoredDType::F8_E4M3);
    static const auto e5m2 = make_table(StoredDType::F8_E5M2);
    const auto& table = kind == StoredDType::F8_E4M3 ? e4m3 : e5m2;
    if (std::isnan(value)) return kind == StoredDType::F8_E4M3 ? 0x7F : 0x7F;
    if (std::isinf(value)) {
        if (kind == StoredDType::F8_E5M2) return value > 0 ? 0x7C : 0xFC;
        return 0x7F;
    }
    int best = -1;
    float best_err = std::numeric_limits<float>::infinity();
    for (int i = 0; i < 256; ++i) {
        const float c = table[i];
        if (!std::isfinite(c)) continue;
        if (c == 0.0f && std::signbit(c) != std::signbit(value)) continue;
        const float err = std::fabs(c - value);
        if (err < best_err || (err == best_err && (i & 1) == 0 && (best & 1) == 1)) {
            best_err = err;
            best = i;
        }
    }
    return static_cast<uint8_t>(best);
}

}  // namespace ipa::io
