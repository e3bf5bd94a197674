#include "ipa/core/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "ipa/core/error.h"

namespace ipa {
namespace fs = std::filesystem;

namespace {
std::atomic<unsigned> g_temp_counter{0};  // unique temp names within a process
}

AtomicFile::AtomicFile(fs::path target) : target_(std::move(target)) {
    temp_ = target_;
    temp_ += fmt::format(".tmp.{}.{}", ::getpid(), g_temp_counter++);
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
        throw DataError(fmt::format("cannot create '{}': {}", temp_.string(), std::strerror(errno)));
    }
}

AtomicFile::~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) {
        std::error_code ec;
        fs::remove(temp_, ec);
    }
}

void AtomicFile::write(const void* data, std::size_t size) {
    const auto* p = static_cast<const char*>(data);
    while (size > 0) {
        const ssize_t n = ::write(fd_, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw DataError(fmt::format("write to '{}' failed: {}", temp_.string(), std::strerror(errno)));
        }
        p += n;
        size -= static_cast<std::size_t>(n);
    }
}

void AtomicFile::commit() {
    if (committed_) return;
    if (::fsync(fd_) != 0) {
        throw DataError(fmt::format("fsync '{}' failed: {}", temp_.string(), std::strerror(errno)));
    }
    ::close(fd_);
    fd_ = -1;
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
        throw DataError(
            fmt::format("cannot rename '{}' to '{}': {}", temp_.string(), target_.string(), std::strerror(errno)));
    }
    committed_ = true;
    const fs::path dir = target_.has_parent_path() ? target_.parent_path() : fs::path(".");
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

void write_file_atomic(const fs::path& target, std::string_view content) {
    AtomicFile f(target);
    f.write(content);
    f.commit();
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DataError(fmt::format("cannot open '{}' for reading", path.string()));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw DataError(fmt::format("error while reading '{}'", path.string()));
    return ss.str();
}

}  // namespace ipa
