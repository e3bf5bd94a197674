#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace ipa::io {

/// A whole file memory-mapped copy-on-write (MAP_PRIVATE, read+write): tensors viewing
/// it never write back to disk, and an accidental in-place op only touches private
/// pages. Non-copyable; share it through `std::shared_ptr` (tensor views hold one).
class MappedFile {
public:
    /// CheckpointError naming the path if the file is missing or cannot be mapped.
    static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    uint8_t* mutable_data() const { return data_; }
    std::size_t size() const { return size_; }
    const std::filesystem::path& path() const { return path_; }

private:
    MappedFile() = default;
    std::filesystem::path path_;
    uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace ipa::io
