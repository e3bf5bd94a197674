#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>

namespace ipa::io {

/// A dtype as stored in a checkpoint. Float8 formats have no LibTorch 1.13 type: they are
/// decoded to float32 when loaded (exactly; every E4M3FN/E5M2 value is a float32).
enum class StoredDType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    BOOL,
    F8_E4M3,
    F8_E5M2,
};

/// "F32" → StoredDType::F32 …; nullopt for names this reader does not know.
std::optional<StoredDType> parse_stored_dtype(const std::string& name);
const char* stored_dtype_name(StoredDType d);
std::size_t stored_dtype_size(StoredDType d);
/// The LibTorch dtype a tensor of this stored type has after loading.
c10::ScalarType loaded_scalar_type(StoredDType d);
/// Inverse for writing; CheckpointError for dtypes safetensors cannot hold.
StoredDType stored_dtype_for(c10::ScalarType t);

/// Decodes `n` float8 values (E4M3FN or E5M2) into float32.
void decode_float8(const uint8_t* src, float* dst, std::size_t n, StoredDType kind);
/// Encodes float32 to float8 with round-to-nearest-even, saturating like PyTorch
/// (E4M3FN: NaN for non-finite input; E5M2: inf stays inf). For writing test fixtures.
uint8_t encode_float8(float value, StoredDType kind);

}  // namespace ipa::io
