#pragma once

#include <filesystem>
#include <string_view>

namespace ipa {

/// A file written under a temporary name next to `target` and renamed over it on
/// `commit()`: readers see the old file or the complete new one, never a partial one.
/// Without `commit()` (an exception, a crash) the temporary is removed and `target`
/// is untouched.
class AtomicFile {
public:
    explicit AtomicFile(std::filesystem::path target);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    void write(const void* data, std::size_t size);
    void write(std::string_view text) { write(text.data(), text.size()); }
    /// Flushes, fsyncs and renames onto the target (and fsyncs the directory).
    void commit();

    const std::filesystem::path& temp_path() const { return temp_; }

private:
    std::filesystem::path target_;
    std::filesystem::path temp_;
    int fd_ = -1;
    bool committed_ = false;
};

/// Writes `content` to `target` atomically.
void write_file_atomic(const std::filesystem::path& target, std::string_view content);

/// Reads a whole file; DataError naming the path if it cannot.
std::string read_file(const std::filesystem::path& path);

}  // namespace ipa
