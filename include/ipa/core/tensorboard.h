#pragma once

/// TensorBoard scalar event files without TensorFlow or protobuf: TFRecord-framed `Event`
/// protos, hand-encoded, that TensorBoard (and torch.utils.tensorboard readers) load as
/// scalars. Byte-identical to the records PyTorch's SummaryWriter writes for the same events
/// (tests/core/test_tensorboard.cpp against scripts/gen_tensorboard_fixture.py).

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ipa {

/// Seconds since the Unix epoch (the `wall_time` TensorBoard expects).
double unix_time_now();

class TensorBoardWriter {
public:
    /// Creates `dir` if needed and opens `dir/events.out.tfevents.<unix-seconds>.<host>.<pid>.<n>`
    /// (the name tensorboard's own writer uses),
    /// writing the first record Event{wall_time, file_version: "brain.Event:2"}. Throws
    /// ipa::Error naming the path if the directory or the file cannot be created.
    explicit TensorBoardWriter(const std::filesystem::path& dir, double wall_time = unix_time_now());
    ~TensorBoardWriter();
    TensorBoardWriter(const TensorBoardWriter&) = delete;
    TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

    /// One Event at `step` whose Summary holds a Value{tag, simple_value} per entry (values
    /// are stored as float32, as TensorBoard does); flushed at once. Throws ipa::Error naming
    /// the file on a write failure.
    void add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values,
                     double wall_time = unix_time_now());

    const std::filesystem::path& path() const { return path_; }

private:
    void write_record(const std::string& data);

    std::filesystem::path path_;
    std::FILE* file_ = nullptr;
};

namespace tensorboard {

/// CRC-32C (Castagnoli) of `data`, and the masked form TFRecord stores.
uint32_t crc32c(const void* data, std::size_t size, uint32_t crc = 0);
uint32_t masked_crc32c(const void* data, std::size_t size);

/// The serialized protos (exposed for tests).
std::string file_version_event(double wall_time);
std::string scalars_event(int64_t step, const std::vector<std::pair<std::string, double>>& values, double wall_time);

/// One TFRecord: uint64 LE length, masked CRC-32C of those 8 bytes, data, masked CRC-32C of data.
std::string frame_record(const std::string& data);

}  // namespace tensorboard
}  // namespace ipa
