#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace ipa {

/// A read cursor over one YAML mapping that remembers which keys were read, so
/// `finish()` can reject the unknown ones. Every error names the full key path
/// (`optim.betas[1]`), the source file and the line.
///
///     auto cfg = ConfigReader::load_file("run.yaml");
///     auto optim = cfg.section("optim");
///     double lr = optim.get_or<double>("lr", 1e-4);
///     optim.finish();                               // unknown keys -> ConfigError
class ConfigReader {
public:
    /// `path` is the dotted prefix of this node ("" at the root); `source` names the
    /// file (or "<string>") for messages.
    ConfigReader(YAML::Node node, std::string path, std::string source);

    static ConfigReader load_file(const std::filesystem::path& file);
    static ConfigReader load_string(const std::string& text, std::string source = "<string>");

    bool has(const std::string& key) const;
    /// Required value; ConfigError if missing or of the wrong type.
    template <class T>
    T get(const std::string& key) const;
    /// Optional value with a default (also used when the value is `null`).
    template <class T>
    T get_or(const std::string& key, const T& fallback) const;
    /// A nested mapping; an absent key gives an empty section.
    ConfigReader section(const std::string& key) const;
    /// Marks a key as known without reading it (e.g. a key handled elsewhere).
    void mark_used(const std::string& key) const;

    /// Throws ConfigError listing every key of this mapping that was never read.
    void finish() const;

    std::vector<std::string> keys() const;
    std::string key_path(const std::string& key) const;
    const YAML::Node& node() const { return node_; }
    const std::string& source() const { return source_; }

private:
    YAML::Node lookup(const std::string& key) const;
    std::string where(const YAML::Node& n) const;

    YAML::Node node_;
    std::string path_;
    std::string source_;
    std::shared_ptr<std::set<std::string>> used_;
};

#define IPA_CONFIG_EXTERN(T)                                          \
    extern template T ConfigReader::get<T>(const std::string&) const; \
    extern template T ConfigReader::get_or<T>(const std::string&, const T&) const;
IPA_CONFIG_EXTERN(bool)
IPA_CONFIG_EXTERN(int)
IPA_CONFIG_EXTERN(int64_t)
IPA_CONFIG_EXTERN(uint64_t)
IPA_CONFIG_EXTERN(float)
IPA_CONFIG_EXTERN(double)
IPA_CONFIG_EXTERN(std::string)
IPA_CONFIG_EXTERN(std::filesystem::path)
IPA_CONFIG_EXTERN(std::vector<int64_t>)
IPA_CONFIG_EXTERN(std::vector<double>)
IPA_CONFIG_EXTERN(std::vector<std::string>)
#undef IPA_CONFIG_EXTERN

/// Applies one `section.key=value` override (the CLI's `--set`) to `root`. The value
/// is parsed as YAML (`1e-4`, `[480, 832]`, `true`, `null`). Intermediate mappings are
/// created; an empty key, a missing `=` or a path through a non-mapping is a ConfigError.
void apply_override(YAML::Node& root, const std::string& assignment);

/// Emits `node` as block YAML text (for logs and for the copy saved with checkpoints).
std::string to_yaml_string(const YAML::Node& node);

}  // namespace ipa
