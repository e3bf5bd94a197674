# Helpers shared by every target: warnings, sanitizers and the shared precompiled header.

set(IPA_WARNINGS -Wall -Wextra -Wno-unused-parameter)
if(IPA_WERROR)
    list(APPEND IPA_WARNINGS -Werror)
endif()

if(IPA_SANITIZE)
    add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                        -fno-sanitize-recover=undefined)
    add_link_options(-fsanitize=address,undefined)
endif()

# Include directories of every ipa target: the fmt/spdlog shim first (LibTorch wheels ship
# their own fmt, see IpaDependencies.cmake), the generated build_config.h, the sources.
function(ipa_include_dirs tgt scope)
    if(EXISTS "${IPA_SHIM_INCLUDE}")
        target_include_directories(${tgt} BEFORE ${scope} "${IPA_SHIM_INCLUDE}")
    endif()
    target_include_directories(${tgt} ${scope} ${PROJECT_BINARY_DIR}/include ${PROJECT_SOURCE_DIR}/include)
endfunction()

# One PCH target; every library, app and test reuses it (same flags required).
if(IPA_USE_PCH)
    add_library(ipa_pch STATIC ${CMAKE_CURRENT_LIST_DIR}/pch_stub.cpp)
    # Same usage requirements (defines, options) as every consumer, or GCC rejects the PCH.
    target_link_libraries(ipa_pch PUBLIC torch ${IPA_YAML_TARGET} spdlog::spdlog
                          nlohmann_json::nlohmann_json)
    target_compile_options(ipa_pch PRIVATE ${IPA_WARNINGS})
    ipa_include_dirs(ipa_pch PRIVATE)
    target_precompile_headers(ipa_pch PRIVATE
        <torch/torch.h> <nlohmann/json.hpp> <spdlog/spdlog.h>
        <filesystem> <string> <vector> <map> <memory> <optional>)
endif()

# PyPI's libtorch.so exports its own copy of parts of libstdc++ (std::filesystem among
# them), and an executable binds to the first definition in its DT_NEEDED order, which is
# libtorch before libstdc++: std::filesystem::remove_all then jumps to null. Executables
# therefore name libstdc++ first (a link option precedes the objects and libraries).
get_filename_component(_ipa_torch_prefix_real "${TORCH_INSTALL_PREFIX}" REALPATH)
if(NOT _ipa_torch_prefix_real MATCHES "^/usr(/local)?$")
    set(IPA_STDCXX_FIRST ON)
endif()

# Every executable's start-up defaults (threading runtimes; src/core/process_start.cpp).
# They apply where LibTorch's BLAS is OpenBLAS (Debian's LibTorch); tests get the same values
# from CTest there, so they start without the re-execution.
set(IPA_TEST_ENV "OMP_NUM_THREADS=2")
set(IPA_THREAD_DEFAULTS_ON 0)
if(_ipa_torch_prefix_real MATCHES "^/usr(/local)?$")
    set(IPA_THREAD_DEFAULTS_ON 1)
    list(APPEND IPA_TEST_ENV "OMP_WAIT_POLICY=PASSIVE" "OPENBLAS_THREAD_TIMEOUT=4"
         "IPA_THREAD_DEFAULTS=OMP_WAIT_POLICY,OPENBLAS_THREAD_TIMEOUT")
endif()
add_library(ipa_process_start OBJECT ${CMAKE_CURRENT_LIST_DIR}/../src/core/process_start.cpp)
target_compile_options(ipa_process_start PRIVATE ${IPA_WARNINGS})
target_compile_definitions(ipa_process_start PRIVATE IPA_THREAD_DEFAULTS_ON=${IPA_THREAD_DEFAULTS_ON})

function(ipa_target_defaults tgt)
    target_compile_options(${tgt} PRIVATE ${IPA_WARNINGS})
    get_target_property(_type ${tgt} TYPE)
    if(_type STREQUAL "EXECUTABLE")
        target_sources(${tgt} PRIVATE $<TARGET_OBJECTS:ipa_process_start>)
    endif()
    # Libraries an executable names before everything else, kept although nothing may
    # reference them by name (--no-as-needed): libstdc++ (above) and tcmalloc, which then
    # serves malloc. One block: CMake de-duplicates repeated link options.
    set(_first "")
    if(IPA_STDCXX_FIRST)
        list(APPEND _first "-lstdc++")
    endif()
    if(IPA_TCMALLOC_LINK)
        list(APPEND _first "${IPA_TCMALLOC_LINK}")
    endif()
    if(_first AND _type STREQUAL "EXECUTABLE")
        target_link_options(${tgt} PRIVATE "LINKER:--push-state,--no-as-needed" ${_first} "LINKER:--pop-state")
    endif()
    if(IPA_USE_PCH)
        target_precompile_headers(${tgt} REUSE_FROM ipa_pch)
    endif()
endfunction()

# ipa_library(NAME SOURCES ... DEPS ...)
function(ipa_library name)
    cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
    add_library(${name} STATIC ${ARG_SOURCES})
    ipa_include_dirs(${name} PUBLIC)
    target_link_libraries(${name} PUBLIC ${ARG_DEPS})
    ipa_target_defaults(${name})
endfunction()
