#include "ipa/io/zip_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "ipa/core/error.h"
#include "ipa/io/mapped_file.h"

namespace ipa::io {

// Layout reference: PKWARE APPNOTE.TXT, sections 4.3.7 (local header), 4.3.12 (central
// directory header), 4.3.14-4.3.16 (ZIP64 end records and end of central directory) and
// 4.5.3 (ZIP64 extended information extra field).
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr std::size_t kEocdSize = 22;
constexpr std::size_t kZip64LocatorSize = 20;
constexpr std::size_t kZip64EocdSize = 56;
constexpr std::size_t kCentralSize = 46;
constexpr std::size_t kLocalSize = 30;
constexpr std::size_t kMaxCommentSize = 0xFFFF;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint32_t kMax32 = 0xFFFFFFFFu;
constexpr uint16_t kMax16 = 0xFFFFu;

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t rd32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
           (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t rd64(const uint8_t* p) { return static_cast<uint64_t>(rd32(p)) | (static_cast<uint64_t>(rd32(p + 4)) << 32); }

// True if [offset, offset + len) lies inside a buffer of `size` bytes (overflow-safe).
bool fits(uint64_t offset, uint64_t len, uint64_t size) { return offset <= size && len <= size - offset; }

struct Directory {
    uint64_t entries = 0;
    uint64_t offset = 0;
    uint64_t size = 0;
};

class Parser {
public:
    explicit Parser(const MappedFile& file) : file_(file), data_(file.data()), size_(file.size()) {}

    [[noreturn]] void fail(const std::string& what) const {
        throw CheckpointError(fmt::format("zip archive '{}': {}", file_.path().string(), what));
    }

    Directory find_directory() const {
        if (size_ < kEocdSize) {
            fail(
                fmt::format("file is {} bytes, too small for a zip archive (at least {} bytes "
                            "expected); is it truncated?",
                            size_, kEocdSize));
        }
        const uint64_t eocd = find_eocd();
        const uint8_t* p = data_ + eocd;
        const uint16_t disk = rd16(p + 4);
        const uint16_t cd_disk = rd16(p + 6);
        Directory dir;
        dir.entries = rd16(p + 10);
        dir.size = rd32(p + 12);
        dir.offset = rd32(p + 16);
        const bool wants_zip64 =
            rd16(p + 8) == kMax16 || dir.entries == kMax16 || dir.size == kMax32 || dir.offset == kMax32;
        const bool has_locator =
            eocd >= kZip64LocatorSize && rd32(data_ + eocd - kZip64LocatorSize) == kZip64LocatorSig;
        if (has_locator) {
            dir = read_zip64(eocd - kZip64LocatorSize);
        } else if (wants_zip64) {
            fail(
                fmt::format("end-of-central-directory record at offset {} has ZIP64 markers "
                            "(0xFFFF/0xFFFFFFFF) but no ZIP64 locator precedes it",
                            eocd));
        } else if (disk != 0 || cd_disk != 0) {
            fail(
                fmt::format("multi-disk archives are not supported (disk {}, directory on "
                            "disk {})",
                            disk, cd_disk));
        }
        if (!fits(dir.offset, dir.size, size_)) {
            fail(
                fmt::format("central directory [{}, {} + {}) runs past the end of the file "
                            "({} bytes); the file is truncated or corrupt",
                            dir.offset, dir.offset, dir.size, size_));
        }
        if (dir.entries > dir.size / kCentralSize) {
            fail(
                fmt::format("end record declares {} entries but the central directory has "
                            "only {} bytes ({} per entry at least)",
                            dir.entries, dir.size, kCentralSize));
        }
        return dir;
    }

    std::vector<ZipReader::Entry> read_entries(const Directory& dir) const {
        std::vector<ZipReader::Entry> out;
        out.reserve(static_cast<std::size_t>(dir.entries));
        const uint64_t end = dir.offset + dir.size;
        uint64_t pos = dir.offset;
        for (uint64_t i = 0; i < dir.entries; ++i) {
            if (!fits(pos, kCentralSize, end) || rd32(data_ + pos) != kCentralSig) {
                fail(
                    fmt::format("central directory entry {} of {} at offset {}: expected "
                                "signature 0x{:08x}, the directory is corrupt",
                                i + 1, dir.entries, pos, kCentralSig));
            }
            const uint8_t* p = data_ + pos;
            const uint16_t flags = rd16(p + 8);
            const uint16_t method = rd16(p + 10);
            const uint32_t crc = rd32(p + 16);
            uint64_t csize = rd32(p + 20);
            uint64_t usize = rd32(p + 24);
            const uint16_t name_len = rd16(p + 28);
            const uint16_t extra_len = rd16(p + 30);
            const uint16_t comment_len = rd16(p + 32);
            uint64_t disk = rd16(p + 34);
            uint64_t local = rd32(p + 42);
            const uint64_t record = kCentralSize + name_len + extra_len + comment_len;
            if (!fits(pos, record, end)) {
                fail(
                    fmt::format("central directory entry {} at offset {} ({} bytes with name, "
                                "extra field and comment) runs past the directory end {}",
                                i + 1, pos, record, end));
            }
            ZipReader::Entry e;
            e.name.assign(reinterpret_cast<const char*>(p + kCentralSize), name_len);
            const uint8_t* extra = p + kCentralSize + name_len;
            read_zip64_extra(e.name, extra, extra_len, usize, csize, local, disk);
            if (disk != 0)
                fail(
                    fmt::format("entry '{}' lives on disk {}; multi-disk archives "
                                "are not supported",
                                e.name, disk));
            if (flags & 0x1) fail(fmt::format("entry '{}' is encrypted", e.name));
            e.method = method;
            e.crc32 = crc;
            e.size = usize;
            e.compressed_size = csize;
            e.offset_of_data = data_offset(e.name, local, csize);
            if (method == 0 && csize != usize) {
                fail(
                    fmt::format("stored entry '{}' has compressed size {} != uncompressed size "
                                "{}; the directory is corrupt",
                                e.name, csize, usize));
            }
            out.push_back(std::move(e));
            pos += record;
        }
        return out;
    }

private:
    uint64_t find_eocd() const {
        const uint64_t last = size_ - kEocdSize;
        const uint64_t first = last > kMaxCommentSize ? last - kMaxCommentSize : 0;
        for (uint64_t pos = last + 1; pos-- > first;) {
            const uint8_t* p = data_ + pos;
            if (rd32(p) == kEocdSig && pos + kEocdSize + rd16(p + 20) <= size_) return pos;
        }
        const bool looks_like_zip = size_ >= 4 && rd32(data_) == kLocalSig;
        if (looks_like_zip) {
            fail(
                fmt::format("starts like a zip archive but has no end-of-central-directory "
                            "record in its last {} bytes; the file is truncated ({} bytes)",
                            size_ - first, size_));
        }
        fail(
            fmt::format("not a zip archive: no end-of-central-directory record (signature "
                        "0x{:08x}) in the last {} bytes, and it does not start with 'PK\\3\\4'",
                        kEocdSig, size_ - first));
    }

    Directory read_zip64(uint64_t locator) const {
        const uint8_t* l = data_ + locator;
        const uint32_t disk = rd32(l + 4);
        const uint64_t record = rd64(l + 8);
        const uint32_t disks = rd32(l + 16);
        if (disk != 0 || disks > 1) {
            fail(fmt::format("multi-disk ZIP64 archives are not supported ({} disks)", disks));
        }
        if (!fits(record, kZip64EocdSize, locator) || rd32(data_ + record) != kZip64EocdSig) {
            fail(
                fmt::format("ZIP64 locator at offset {} points to offset {}, where no ZIP64 "
                            "end-of-central-directory record (signature 0x{:08x}) lies",
                            locator, record, kZip64EocdSig));
        }
        const uint8_t* r = data_ + record;
        if (rd32(r + 16) != 0 || rd32(r + 20) != 0) {
            fail("multi-disk ZIP64 archives are not supported");
        }
        Directory dir;
        dir.entries = rd64(r + 32);
        dir.size = rd64(r + 40);
        dir.offset = rd64(r + 48);
        return dir;
    }

    // Replaces the 32-bit fields that are 0xFFFFFFFF (0xFFFF for the disk) by their 64-bit
    // values from the ZIP64 extra field, which stores only those, in this order.
    void read_zip64_extra(const std::string& name, const uint8_t* extra, uint16_t len, uint64_t& usize, uint64_t& csize,
                          uint64_t& local, uint64_t& disk) const {
        const bool need_any = usize == kMax32 || csize == kMax32 || local == kMax32 || disk == kMax16;
        std::size_t pos = 0;
        while (pos + 4 <= len) {
            const uint16_t id = rd16(extra + pos);
            const uint16_t block = rd16(extra + pos + 2);
            if (pos + 4 + block > len) {
                fail(
                    fmt::format("entry '{}': extra field block 0x{:04x} of {} bytes runs past "
                                "the extra field ({} bytes)",
                                name, id, block, len));
            }
            if (id == kZip64ExtraId) {
                const uint8_t* q = extra + pos + 4;
                std::size_t used = 0;
                auto take = [&](uint64_t& field, const char* what) {
                    if (used + 8 > block) {
                        fail(
                            fmt::format("entry '{}': ZIP64 extra field has {} bytes, too short "
                                        "for the 64-bit {}",
                                        name, block, what));
                    }
                    field = rd64(q + used);
                    used += 8;
                };
                if (usize == kMax32) take(usize, "uncompressed size");
                if (csize == kMax32) take(csize, "compressed size");
                if (local == kMax32) take(local, "local header offset");
                if (disk == kMax16) {
                    if (used + 4 > block)
                        fail(
                            fmt::format("entry '{}': ZIP64 extra field too "
                                        "short for the disk number",
                                        name));
                    disk = rd32(q + used);
                }
                return;
            }
            pos += 4 + static_cast<std::size_t>(block);
        }
        if (need_any) {
            fail(
                fmt::format("entry '{}' has 0xFFFFFFFF size/offset fields but no ZIP64 extra "
                            "field (id 0x0001)",
                            name));
        }
    }

    // The local header repeats the name but may have a different extra field (torch pads
    // it to align data to 64 bytes), so the data offset must come from the local header.
    uint64_t data_offset(const std::string& name, uint64_t local, uint64_t csize) const {
        if (!fits(local, kLocalSize, size_) || rd32(data_ + local) != kLocalSig) {
            fail(
                fmt::format("entry '{}': no local header (signature 0x{:08x}) at offset {} "
                            "(file is {} bytes); the file is truncated or corrupt",
                            name, kLocalSig, local, size_));
        }
        const uint8_t* p = data_ + local;
        const uint16_t name_len = rd16(p + 26);
        const uint16_t extra_len = rd16(p + 28);
        const uint64_t start = local + kLocalSize + name_len + extra_len;
        if (!fits(local + kLocalSize, name_len, size_) ||
            std::string(reinterpret_cast<const char*>(p + kLocalSize), name_len) != name) {
            fail(
                fmt::format("entry '{}': the local header at offset {} names a different "
                            "entry; the archive is corrupt",
                            name, local));
        }
        if (!fits(start, csize, size_)) {
            fail(
                fmt::format("entry '{}': data [{}, {} + {}) runs past the end of the file "
                            "({} bytes); the file is truncated",
                            name, start, start, csize, size_));
        }
        return start;
    }

    const MappedFile& file_;
    const uint8_t* data_;
    uint64_t size_;
};

std::array<uint32_t, 256> make_crc_table() {
    std::array<uint32_t, 256> table{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    return table;
}

}  // namespace

uint32_t crc32(const uint8_t* data, std::size_t size, uint32_t crc) {
    static const std::array<uint32_t, 256> table = make_crc_table();
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

ZipReader ZipReader::open(std::shared_ptr<MappedFile> file) {
    ZipReader zip;
    Parser parser(*file);
    zip.entries_ = parser.read_entries(parser.find_directory());
    for (std::size_t i = 0; i < zip.entries_.size(); ++i) {
        if (!zip.index_.emplace(zip.entries_[i].name, i).second) {
            parser.fail(fmt::format("entry '{}' appears twice in the central directory", zip.entries_[i].name));
        }
    }
    zip.file_ = std::move(file);
    return zip;
}

std::vector<std::string> ZipReader::names() const {
    std::vector<std::string> out;
    out.reserve(entries_.size());
    for (const auto& e : entries_) out.push_back(e.name);
    return out;
}

const ZipReader::Entry& ZipReader::entry(const std::string& name) const {
    const auto it = index_.find(name);
    if (it == index_.end()) {
        throw CheckpointError(
            fmt::format("zip archive '{}': no entry '{}' ({} entries)", file_->path().string(), name, entries_.size()));
    }
    return entries_[it->second];
}

const uint8_t* ZipReader::data(const Entry& e) const {
    if (e.method != 0) {
        throw CheckpointError(
            fmt::format("zip archive '{}': entry '{}' is compressed (method {}), expected stored (method 0); "
                        "torch.save never compresses, so the archive was re-packed by another tool — "
                        "re-save it with torch.save or unzip and re-zip with 'zip -0'",
                        file_->path().string(), e.name, e.method));
    }
    return file_->data() + e.offset_of_data;
}

void ZipReader::verify_crc(const Entry& e) const {
    const uint32_t got = crc32(data(e), static_cast<std::size_t>(e.size));
    if (got != e.crc32) {
        throw CheckpointError(fmt::format("zip archive '{}': entry '{}' is corrupt: CRC-32 0x{:08x}, expected 0x{:08x}",
                                          file_->path().string(), e.name, got, e.crc32));
    }
}

}  // namespace ipa::io
