# Third-party dependencies. LibTorch comes from Debian (libtorch-dev 1.13, CPU) or from a
# LibTorch 2.x / PyTorch install (e.g. the PyPI wheel, CUDA build) via CMAKE_PREFIX_PATH or
# Torch_DIR. scripts/env.sh passes the right prefixes for both (IPA_TORCH=debian|pip).
find_package(Torch REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(CLI11 CONFIG QUIET)
find_package(Threads REQUIRED)

# TorchConfig's find_library() also searches the system directories: with Debian's
# libtorch-dev installed next to a wheel it can pick /usr/lib/.../libtorch.so while the
# headers come from the wheel. Refuse that mix instead of failing at run time.
get_filename_component(_ipa_torch_lib_dir "${TORCH_LIBRARY}" DIRECTORY)
get_filename_component(_ipa_torch_lib_dir "${_ipa_torch_lib_dir}" REALPATH)
get_filename_component(_ipa_torch_prefix "${TORCH_INSTALL_PREFIX}" REALPATH)
string(FIND "${_ipa_torch_lib_dir}/" "${_ipa_torch_prefix}/" _ipa_torch_pos)
if(NOT _ipa_torch_pos EQUAL 0)
    message(FATAL_ERROR
        "ipa: LibTorch headers come from ${TORCH_INSTALL_PREFIX} but libtorch from ${TORCH_LIBRARY}. "
        "Put the LibTorch root first in CMAKE_PREFIX_PATH (for a Python install: "
        "-DCMAKE_PREFIX_PATH=\"$(python -c 'import torch,os;print(os.path.dirname(torch.__file__))')\"), "
        "or pass -DTORCH_LIBRARY=<that root>/lib/libtorch.so.")
endif()

# A CUDA build of LibTorch (e.g. PyPI's torch) exports torch_cuda / c10_cuda.
if(TARGET torch_cuda OR TARGET c10_cuda OR TORCH_CUDA_LIBRARIES)
    set(IPA_TORCH_CUDA ON)
else()
    set(IPA_TORCH_CUDA OFF)
endif()
if(IPA_WITH_NCCL AND NOT IPA_TORCH_CUDA)
    message(FATAL_ERROR
        "ipa: IPA_WITH_NCCL=ON needs a CUDA build of LibTorch, but ${TORCH_INSTALL_PREFIX} is CPU-only "
        "(NCCL is the multi-GPU backend; CPU training uses Gloo). Configure against a CUDA LibTorch "
        "(e.g. the PyPI torch wheel) or drop -DIPA_WITH_NCCL=ON.")
endif()
if(IPA_TORCH_CUDA)
    find_library(IPA_C10_CUDA_LIBRARY c10_cuda PATHS "${TORCH_INSTALL_PREFIX}/lib" NO_DEFAULT_PATH)
    if(NOT IPA_C10_CUDA_LIBRARY)
        message(FATAL_ERROR "ipa: CUDA LibTorch at ${TORCH_INSTALL_PREFIX} without lib/libc10_cuda.so")
    endif()
endif()

if(NOT CLI11_FOUND)
    find_path(IPA_CLI11_INCLUDE CLI/CLI.hpp REQUIRED)
    add_library(CLI11::CLI11 INTERFACE IMPORTED)
    target_include_directories(CLI11::CLI11 INTERFACE ${IPA_CLI11_INCLUDE})
endif()

# yaml-cpp 0.7 exports `yaml-cpp`, newer ones `yaml-cpp::yaml-cpp`.
if(TARGET yaml-cpp::yaml-cpp)
    set(IPA_YAML_TARGET yaml-cpp::yaml-cpp)
else()
    set(IPA_YAML_TARGET yaml-cpp)
endif()

# LibTorch 2.x wheels ship their own {fmt} headers (fmt 11/12) in include/, which the
# compiler would find before the fmt that spdlog was built with (Debian: fmt 9) and mix two
# ABIs in one binary. A small include directory searched first (-I, before the -isystem of
# imported targets) holds links to spdlog's own fmt and spdlog headers.
set(IPA_SHIM_INCLUDE "${PROJECT_BINARY_DIR}/shim-include")
# (Debian's LibTorch lives in /usr/include itself: nothing to shadow there.)
if(EXISTS "${_ipa_torch_prefix}/include/fmt" AND NOT _ipa_torch_prefix MATCHES "^/usr(/local)?$")
    # The fmt and spdlog that spdlog's CMake package points at (Debian's, or a carried prefix).
    foreach(_pair "fmt;fmt::fmt;fmt/format.h" "spdlog;spdlog::spdlog;spdlog/spdlog.h")
        list(GET _pair 0 _dir)
        list(GET _pair 1 _tgt)
        list(GET _pair 2 _hdr)
        set(_src "")
        if(TARGET ${_tgt})
            get_target_property(_incs ${_tgt} INTERFACE_INCLUDE_DIRECTORIES)
            foreach(_inc IN LISTS _incs)
                if(NOT _src AND EXISTS "${_inc}/${_hdr}")
                    set(_src "${_inc}/${_dir}")
                endif()
            endforeach()
        endif()
        if(NOT _src)
            find_path(_ipa_hdr_dir_${_dir} ${_hdr} PATHS /usr/include)
            set(_src "${_ipa_hdr_dir_${_dir}}/${_dir}")
        endif()
        get_filename_component(_src "${_src}" REALPATH)
        if(NOT EXISTS "${_src}" OR _src MATCHES "^${_ipa_torch_prefix}/")
            message(FATAL_ERROR "ipa: no ${_dir} headers outside LibTorch (found: ${_src}); install spdlog and fmt")
        endif()
        file(MAKE_DIRECTORY "${IPA_SHIM_INCLUDE}")
        file(REMOVE "${IPA_SHIM_INCLUDE}/${_dir}")
        file(CREATE_LINK "${_src}" "${IPA_SHIM_INCLUDE}/${_dir}" SYMBOLIC)
    endforeach()
    message(STATUS "ipa: LibTorch ships its own fmt; using spdlog's fmt and spdlog through ${IPA_SHIM_INCLUDE}")
endif()

if(IPA_WITH_MEDIA)
    # OpenCV: only media/, pose/, curate/, prepare/, sample pipeline, eval link it; the trainer does not.
    find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs videoio)
    # SentencePiece (umT5 tokenizer): Debian ships a pkg-config file, no CMake package.
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(IPA_SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
    message(STATUS "ipa: OpenCV ${OpenCV_VERSION}, SentencePiece ${IPA_SENTENCEPIECE_VERSION}")
else()
    message(STATUS "ipa: media-free build (IPA_WITH_MEDIA=OFF): no OpenCV / SentencePiece parts")
endif()

message(STATUS "ipa: LibTorch ${Torch_VERSION} (${TORCH_INSTALL_PREFIX}), CUDA: ${IPA_TORCH_CUDA}, NCCL: ${IPA_WITH_NCCL}")

# Host allocator of the executables. glibc's malloc returns large freed blocks to the
# kernel and faults them in again on the next step (a third of a CPU training step went to
# system time); tcmalloc keeps them. Only the runtime library is needed (libtcmalloc-minimal4
# on Debian); without it (e.g. a GPU machine without Debian packages) the system allocator
# stays. Host memory only: CUDA memory has its own caching allocator.
set(IPA_ALLOCATOR "auto" CACHE STRING "Host allocator of the executables: auto (tcmalloc when found), tcmalloc, system")
set_property(CACHE IPA_ALLOCATOR PROPERTY STRINGS auto tcmalloc system)
set(IPA_TCMALLOC_LINK "")
set(IPA_HOST_ALLOCATOR "system")
if(IPA_SANITIZE AND NOT IPA_ALLOCATOR STREQUAL "system")
    message(STATUS "ipa: sanitizer build: system allocator (ASan replaces malloc)")
elseif(NOT IPA_ALLOCATOR STREQUAL "system")
    find_library(IPA_TCMALLOC_LIBRARY NAMES tcmalloc_minimal libtcmalloc_minimal.so.4)
    if(IPA_TCMALLOC_LIBRARY)
        set(IPA_TCMALLOC_LINK "${IPA_TCMALLOC_LIBRARY}")
        set(IPA_HOST_ALLOCATOR "tcmalloc")
    elseif(IPA_ALLOCATOR STREQUAL "tcmalloc")
        message(FATAL_ERROR "IPA_ALLOCATOR=tcmalloc, but libtcmalloc_minimal was not found "
                            "(Debian: apt install libtcmalloc-minimal4)")
    endif()
endif()
message(STATUS "ipa: host allocator of the executables: ${IPA_HOST_ALLOCATOR} ${IPA_TCMALLOC_LINK}")

# Build options visible to the code (a header, not -D flags, so the shared PCH stays valid).
set(IPA_WITH_MEDIA_01 0)
set(IPA_WITH_CUDA_01 0)
if(IPA_WITH_MEDIA)
    set(IPA_WITH_MEDIA_01 1)
endif()
if(IPA_TORCH_CUDA)
    set(IPA_WITH_CUDA_01 1)
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/build_config.h.in ${PROJECT_BINARY_DIR}/include/ipa/build_config.h @ONLY)
