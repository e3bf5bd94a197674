#pragma once

/// Candidate / training manifests: RFC 4180 CSV with a header row and DiffSynth-style
/// columns (`id, video, vace_video, vace_reference_image, keypoints, prompt`, plus any
/// others such as `group`, `label`, `defect`). Paths are relative to the manifest's
/// directory in the file and absolute in memory.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ipa::curate {

/// One manifest row. The path columns are absolute after read_manifest() (a relative
/// entry is resolved against the manifest's directory); empty if the column is absent or blank.
struct ManifestRow {
    std::string id;
    std::filesystem::path video, vace_video, vace_reference_image, keypoints;
    std::string prompt;
    std::map<std::string, std::string> extra;  ///< every other column, e.g. group, label, defect

    /// `extra[key]`, or `fallback` when the column is absent or blank.
    std::string get(const std::string& key, const std::string& fallback = {}) const;
};

/// A whole manifest. `columns` keeps the header order (write_manifest() writes these
/// columns, adding any extra keys the rows carry that are not listed, sorted by name).
struct Manifest {
    std::filesystem::path path;
    std::vector<std::string> columns;
    std::vector<ManifestRow> rows;
};

/// The six named columns, in their conventional order.
const std::vector<std::string>& standard_columns();

/// Reads an RFC 4180 CSV (quoted fields with commas, newlines and doubled quotes; CRLF or
/// LF; a UTF-8 BOM is skipped; blank lines are skipped). Throws ipa::DataError naming
/// file:line for: a missing file, no header, no `id` column, duplicate column names,
/// a ragged row, an empty or duplicate id, an unterminated quote, text after a closing quote.
Manifest read_manifest(const std::filesystem::path& csv);

/// Parses CSV text (as read_manifest(), `source` names it in errors; relative paths are
/// resolved against `base_dir`).
Manifest parse_manifest(const std::string& text, const std::filesystem::path& source,
                        const std::filesystem::path& base_dir);

/// Writes atomically (temp + rename); LF line ends, a field is quoted when it holds a
/// comma, quote, CR/LF or leading/trailing space. Paths below the csv's directory are
/// written relative to it, others absolute. Creates the parent directory.
void write_manifest(const std::filesystem::path& csv, const Manifest& m);

}  // namespace ipa::curate
