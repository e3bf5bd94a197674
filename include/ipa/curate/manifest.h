#pragma once

/// Candidate / training manifests: RFC 4180 CSV with a header row and DiffSynth-style
/// column names (`id, video, vace_video, vace_reference_image, keypoints, prompt`, plus
/// any other columns such as `group`, `label`, `defect`).

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ipa::curate {

/// One manifest row. Path columns are resolved on read: relative paths are taken against
/// the manifest's directory and made absolute (lexically normalised); empty when the column
/// is absent or blank.
struct ManifestRow {
    std::string id;
    std::filesystem::path video, vace_video, vace_reference_image, keypoints;
    std::string prompt;
    std::map<std::string, std::string> extra;  ///< every other column, e.g. group, label, defect
    int64_t line = 0;                          ///< line of the CSV where this record starts (1-based; 0 if not read from a file)
};

/// A whole manifest: its path (absolute after read_manifest), its columns in file order and
/// its rows in file order.
struct Manifest {
    std::filesystem::path path;
    std::vector<std::string> columns;
    std::vector<ManifestRow> rows;
};

/// The column names that map to ManifestRow's path fields.
inline const std::vector<std::string>& manifest_path_columns() {
    static const std::vector<std::string> k{"video", "vace_video", "vace_reference_image", "keypoints"};
    return k;
}

/// Reads an RFC 4180 CSV with a header row: fields separated by commas, optionally quoted
/// with `"` (a quote inside a quoted field is doubled; quoted fields may hold commas and
/// newlines), LF or CRLF line ends, UTF-8 (a leading byte-order mark is skipped). Blank
/// lines between records are skipped. Throws ipa::DataError naming file:line for: a missing
/// or unreadable file, an empty file, no `id` column, a duplicate or empty column name, a
/// row with a different number of fields than the header, an empty or duplicate id, an
/// unterminated quoted field, or text after a closing quote.
Manifest read_manifest(const std::filesystem::path& csv);

/// Writes `m` atomically (temp file + rename; parent directories are created). Columns:
/// `m.columns` in order (with `id` put first if absent) followed by any `extra` key that no
/// column names (sorted); an empty `m.columns` gives `id, video, vace_video,
/// vace_reference_image, keypoints, prompt` + the extra keys. Path fields are written
/// relative to the csv's directory when they lie below it, absolute otherwise. Fields are
/// quoted when they hold a comma, quote, CR/LF or leading/trailing space.
/// DataError if two rows share an id or an id is empty.
void write_manifest(const std::filesystem::path& csv, const Manifest& m);

/// The value of column `name` in `row` (path columns as stored, other known columns, or
/// `extra`); `fallback` if the row has no such value.
std::string manifest_value(const ManifestRow& row, const std::string& name, const std::string& fallback = {});

}  // namespace ipa::curate
