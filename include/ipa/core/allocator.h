#pragma once

#include <string>

namespace ipa {

/// The host allocator in use in this process, found at run time: "tcmalloc <version>" when
/// tcmalloc serves malloc (linked by the build, see IPA_ALLOCATOR, or preloaded), else
/// "system". Host memory only; CUDA memory has LibTorch's caching allocator.
std::string host_allocator();

}  // namespace ipa
