#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace ipa::io {

class MappedFile;

/// CRC-32 (IEEE 802.3, the zip checksum) of `size` bytes, continuing from `crc` (0 to start).
uint32_t crc32(const uint8_t* data, std::size_t size, uint32_t crc = 0);

/// A read-only view of a zip archive's directory over a memory-mapped file (ZIP64 aware).
/// Every offset and size is checked against the file size when the archive is opened, so a
/// truncated or corrupt archive fails with a CheckpointError instead of reading out of
/// bounds. Only stored (method 0) entries can be read: `torch.save` never compresses.
class ZipReader {
public:
    struct Entry {
        std::string name;
        uint64_t offset_of_data = 0;  ///< from the start of the file
        uint64_t size = 0;            ///< bytes of (uncompressed) data
        uint64_t compressed_size = 0;
        uint16_t method = 0;  ///< 0 = stored, 8 = deflate, …
        uint32_t crc32 = 0;   ///< as recorded in the central directory
    };

    /// Parses the end-of-central-directory record (and its ZIP64 form), every central
    /// directory entry and every local header. CheckpointError naming the file on failure.
    static ZipReader open(std::shared_ptr<MappedFile> file);

    /// Entry names in central-directory order.
    std::vector<std::string> names() const;
    bool contains(const std::string& name) const { return index_.count(name) != 0; }
    /// CheckpointError naming the archive and the entry if there is no such entry.
    const Entry& entry(const std::string& name) const;
    const std::vector<Entry>& entries() const { return entries_; }

    /// The entry's bytes inside the mapping; CheckpointError if it is not stored (method 0).
    const uint8_t* data(const Entry& e) const;
    /// CheckpointError naming the entry if its bytes do not match the recorded CRC-32.
    void verify_crc(const Entry& e) const;

    const std::shared_ptr<MappedFile>& file() const { return file_; }

private:
    std::shared_ptr<MappedFile> file_;
    std::vector<Entry> entries_;
    std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace ipa::io
