#include "ipa/curate/manifest.h"

#include <set>
#include <sstream>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"

namespace ipa::curate {
namespace fs = std::filesystem;

namespace {

struct CsvRecord {
    std::vector<std::string> fields;
    int64_t line = 0;  // 1-based line where the record starts
};

// RFC 4180 tokenizer: quoted fields may hold commas, CR/LF and doubled quotes.
std::vector<CsvRecord> tokenize(const std::string& text, const std::string& source) {
    std::vector<CsvRecord> records;
    size_t i = 0;
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 BOM
    int64_t line = 1;
    const size_t n = text.size();
    while (i < n) {
        CsvRecord rec;
        rec.line = line;
        if (text[i] == '\n' || text[i] == '\r') {  // a blank line is skipped
            if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
            ++i;
            ++line;
            continue;
        }
        bool end_of_record = false;
        while (!end_of_record) {
            std::string field;
            if (i < n && text[i] == '"') {
                const int64_t open_line = line;
                ++i;
                bool closed = false;
                while (i < n) {
                    const char c = text[i];
                    if (c == '"') {
                        if (i + 1 < n && text[i + 1] == '"') {
                            field += '"';
                            i += 2;
                            continue;
                        }
                        ++i;
                        closed = true;
                        break;
                    }
                    if (c == '\n') ++line;
                    field += c;
                    ++i;
                }
                if (!closed)
                    throw DataError(source + ":" + std::to_string(open_line) +
                                    ": unterminated quoted field (a '\"' opens a field that never closes); "
                                    "hint: double quotes inside quoted fields must be written as \"\"");
                if (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
                    throw DataError(source + ":" + std::to_string(line) +
                                    ": unexpected text after a closing quote; hint: quote the whole field "
                                    "and double the quotes inside it");
            } else {
                while (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                    if (text[i] == '"')
                        throw DataError(source + ":" + std::to_string(line) +
                                        ": a quote inside an unquoted field; hint: quote the field and "
                                        "write the quote as \"\"");
                    field += text[i++];
                }
            }
            rec.fields.push_back(std::move(field));
            if (i >= n) {
                end_of_record = true;
            } else if (text[i] == ',') {
                ++i;
            } else {  // line end
                if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
                ++i;
                ++line;
                end_of_record = true;
            }
        }
        records.push_back(std::move(rec));
    }
    return records;
}

fs::path resolve(const std::string& value, const fs::path& base_dir) {
    if (value.empty()) return {};
    fs::path p = fs::u8path(value);
    if (p.is_relative()) p = base_dir / p;
    return p.lexically_normal();
}

std::string relative_string(const fs::path& p, const fs::path& csv_dir) {
    if (p.empty()) return {};
    if (p.is_absolute() && !csv_dir.empty()) {
        const fs::path rel = p.lexically_normal().lexically_relative(csv_dir);
        if (!rel.empty() && *rel.begin() != "..") return rel.generic_u8string();
    }
    return p.generic_u8string();
}

std::string quote(const std::string& field) {
    const bool needs = field.find_first_of(",\"\r\n") != std::string::npos ||
                       (!field.empty() && (field.front() == ' ' || field.back() == ' '));
    if (!needs) return field;
    std::string out = "\"";
    for (const char c : field) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
    return out;
}

}  // namespace

std::string ManifestRow::get(const std::string& key, const std::string& fallback) const {
    const auto it = extra.find(key);
    return it == extra.end() || it->second.empty() ? fallback : it->second;
}

const std::vector<std::string>& standard_columns() {
    static const std::vector<std::string> cols = {"id",        "video", "vace_video", "vace_reference_image",
                                                  "keypoints", "prompt"};
    return cols;
}

Manifest parse_manifest(const std::string& text, const fs::path& source, const fs::path& base_dir) {
    const std::string src = source.u8string();
    const auto records = tokenize(text, src);
    if (records.empty())
        throw DataError(src +
                        ": empty manifest (no header row); hint: the first line names the columns, "
                        "e.g. id,video,vace_video,vace_reference_image,keypoints,prompt");
    Manifest m;
    m.path = source;
    m.columns = records[0].fields;
    std::set<std::string> seen_cols;
    for (const auto& c : m.columns) {
        if (c.empty())
            throw DataError(src + ":" + std::to_string(records[0].line) + ": empty column name in the header");
        if (!seen_cols.insert(c).second)
            throw DataError(src + ":" + std::to_string(records[0].line) + ": duplicate column '" + c + "'");
    }
    if (!seen_cols.count("id"))
        throw DataError(src + ":" + std::to_string(records[0].line) +
                        ": no 'id' column in the header; hint: every manifest needs a unique id per row");
    std::set<std::string> ids;
    for (size_t r = 1; r < records.size(); ++r) {
        const auto& rec = records[r];
        const std::string where = src + ":" + std::to_string(rec.line);
        if (rec.fields.size() != m.columns.size())
            throw DataError(where + ": row has " + std::to_string(rec.fields.size()) + " fields, the header has " +
                            std::to_string(m.columns.size()) +
                            "; hint: quote fields that contain commas or line breaks");
        ManifestRow row;
        for (size_t c = 0; c < m.columns.size(); ++c) {
            const std::string& col = m.columns[c];
            const std::string& v = rec.fields[c];
            if (col == "id")
                row.id = v;
            else if (col == "prompt")
                row.prompt = v;
            else if (col == "video")
                row.video = resolve(v, base_dir);
            else if (col == "vace_video")
                row.vace_video = resolve(v, base_dir);
            else if (col == "vace_reference_image")
                row.vace_reference_image = resolve(v, base_dir);
            else if (col == "keypoints")
                row.keypoints = resolve(v, base_dir);
            else
                row.extra[col] = v;
        }
        if (row.id.empty()) throw DataError(where + ": empty id");
        if (!ids.insert(row.id).second) throw DataError(where + ": duplicate id '" + row.id + "'");
        m.rows.push_back(std::move(row));
    }
    return m;
}

Manifest read_manifest(const fs::path& csv) {
    if (!fs::is_regular_file(csv)) throw DataError(csv.u8string() + ": manifest not found (or not a regular file)");
    const fs::path base = fs::absolute(csv).parent_path();
    return parse_manifest(read_file(csv), csv, base);
}

void write_manifest(const fs::path& csv, const Manifest& m) {
    std::vector<std::string> cols = m.columns;
    if (cols.empty()) cols = standard_columns();
    std::set<std::string> listed(cols.begin(), cols.end());
    if (!listed.count("id")) {
        cols.insert(cols.begin(), "id");
        listed.insert("id");
    }
    std::set<std::string> more;
    for (const auto& row : m.rows)
        for (const auto& [k, v] : row.extra)
            if (!listed.count(k)) more.insert(k);
    cols.insert(cols.end(), more.begin(), more.end());

    const fs::path dir = fs::absolute(csv).parent_path().lexically_normal();
    std::set<std::string> ids;
    std::ostringstream out;
    for (size_t c = 0; c < cols.size(); ++c) out << (c ? "," : "") << quote(cols[c]);
    out << '\n';
    for (const auto& row : m.rows) {
        if (row.id.empty()) throw DataError(csv.u8string() + ": cannot write a row with an empty id");
        if (!ids.insert(row.id).second)
            throw DataError(csv.u8string() + ": cannot write duplicate id '" + row.id + "'");
        for (size_t c = 0; c < cols.size(); ++c) {
            const std::string& col = cols[c];
            std::string v;
            if (col == "id")
                v = row.id;
            else if (col == "prompt")
                v = row.prompt;
            else if (col == "video")
                v = relative_string(row.video, dir);
            else if (col == "vace_video")
                v = relative_string(row.vace_video, dir);
            else if (col == "vace_reference_image")
                v = relative_string(row.vace_reference_image, dir);
            else if (col == "keypoints")
                v = relative_string(row.keypoints, dir);
            else
                v = row.get(col);
            out << (c ? "," : "") << quote(v);
        }
        out << '\n';
    }
    fs::create_directories(dir);
    write_file_atomic(csv, out.str());
}

}  // namespace ipa::curate
