# Third-party dependencies. LibTorch comes from Debian (libtorch-dev 1.13, CPU) or from a
# user's LibTorch 2.x / PyTorch install via CMAKE_PREFIX_PATH or Torch_DIR.
find_package(Torch REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(CLI11 CONFIG QUIET)
find_package(Threads REQUIRED)

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

# OpenCV: only media/, pose/, curate/ (and later sample/, eval/) link it; the trainer does not.
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs videoio)

# SentencePiece (umT5 tokenizer): Debian ships a pkg-config file, no CMake package.
find_package(PkgConfig REQUIRED)
pkg_check_modules(IPA_SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

message(STATUS "ipa: OpenCV ${OpenCV_VERSION}, SentencePiece ${IPA_SENTENCEPIECE_VERSION}")
message(STATUS "ipa: LibTorch ${Torch_VERSION} (${TORCH_INSTALL_PREFIX})")
