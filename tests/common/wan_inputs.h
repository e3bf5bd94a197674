#pragma once

// The DiT inputs of a parity fixture (tests/fixtures/wan, tests/fixtures/diffusers): tensors
// x, t, context, optional vace_context, seq_len, context_scale — copied out of the mapped file
// onto `device`.

#include <c10/core/Device.h>

#include "ipa/io/safetensors.h"
#include "ipa/models/wan/model.h"

namespace ipa::test {

inline models::wan::WanInputs wan_inputs_from(const io::SafetensorsFile& io, const c10::Device& device = c10::kCPU) {
    auto get = [&](const std::string& name) {
        const auto t = io.tensor(name);
        return t.to(device, t.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
    };
    models::wan::WanInputs in;
    in.x = get("x");
    in.t = get("t");
    in.context = get("context");
    if (io.contains("vace_context")) in.vace_context = get("vace_context");
    if (io.contains("seq_len")) in.seq_len = io.tensor("seq_len").item<int64_t>();
    if (io.contains("context_scale")) in.context_scale = io.tensor("context_scale").item<float>();
    return in;
}

}  // namespace ipa::test
