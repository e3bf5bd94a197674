#pragma once

#include <string>

namespace ipa {

/// The host allocator in use in this process, found at run time: "tcmalloc <version>" when
/// tcmalloc serves malloc (linked by the build, see IPA_ALLOCATOR, or preloaded), else
/// "system". Host memory only; CUDA memory has LibTorch's caching allocator.
std::string host_allocator();

/// The threading runtimes' idle-thread settings of this process, e.g.
/// "OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=4 (ipa defaults)": every ipa executable
/// sets them at start-up unless the user did (src/core/process_start.cpp).
std::string thread_settings();

}  // namespace ipa
