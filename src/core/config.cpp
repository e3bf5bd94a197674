#include "ipa/core/config.h"

#include <fmt/format.h>

#include <sstream>

#include "ipa/core/error.h"

namespace ipa {
namespace {

std::string node_kind(const YAML::Node& n) {
    switch (n.Type()) {
        case YAML::NodeType::Null:
            return "null";
        case YAML::NodeType::Scalar:
            return "'" + n.Scalar() + "'";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Map:
            return "a mapping";
        default:
            return "nothing";
    }
}

template <class T>
const char* type_name();
template <>
const char* type_name<bool>() {
    return "a boolean (true/false)";
}
template <>
const char* type_name<int>() {
    return "an integer";
}
template <>
const char* type_name<int64_t>() {
    return "an integer";
}
template <>
const char* type_name<uint64_t>() {
    return "a non-negative integer";
}
template <>
const char* type_name<float>() {
    return "a number";
}
template <>
const char* type_name<double>() {
    return "a number";
}
template <>
const char* type_name<std::string>() {
    return "a string";
}

template <class T>
T convert_scalar(const YAML::Node& n, const std::string& path, const std::string& where) {
    if (!n.IsScalar()) {
        throw ConfigError(
            fmt::format("config key '{}'{}: expected {}, got {}", path, where, type_name<T>(), node_kind(n)));
    }
    try {
        return n.as<T>();
    } catch (const YAML::Exception&) {
        throw ConfigError(
            fmt::format("config key '{}'{}: expected {}, got {}", path, where, type_name<T>(), node_kind(n)));
    }
}

template <class T>
struct Converter {
    static T run(const YAML::Node& n, const std::string& path, const std::string& where) {
        return convert_scalar<T>(n, path, where);
    }
};

template <>
struct Converter<std::filesystem::path> {
    static std::filesystem::path run(const YAML::Node& n, const std::string& path, const std::string& where) {
        return std::filesystem::path(convert_scalar<std::string>(n, path, where));
    }
};

template <class E>
struct Converter<std::vector<E>> {
    static std::vector<E> run(const YAML::Node& n, const std::string& path, const std::string& where) {
        if (!n.IsSequence()) {
            throw ConfigError(fmt::format("config key '{}'{}: expected a list, got {}", path, where, node_kind(n)));
        }
        std::vector<E> out;
        out.reserve(n.size());
        for (std::size_t i = 0; i < n.size(); ++i) {
            out.push_back(Converter<E>::run(n[i], fmt::format("{}[{}]", path, i), where));
        }
        return out;
    }
};

}  // namespace

ConfigReader::ConfigReader(YAML::Node node, std::string path, std::string source)
    : node_(std::move(node)),
      path_(std::move(path)),
      source_(std::move(source)),
      used_(std::make_shared<std::set<std::string>>()) {
    if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap()) {
        throw ConfigError(fmt::format("config section '{}' in {}: expected a mapping, got {}",
                                      path_.empty() ? "<root>" : path_, source_, node_kind(node_)));
    }
}

ConfigReader ConfigReader::load_file(const std::filesystem::path& file) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
        throw ConfigError(fmt::format("config file '{}' does not exist or is not a file", file.string()));
    }
    YAML::Node root;
    try {
        root = YAML::LoadFile(file.string());
    } catch (const YAML::Exception& e) {
        throw ConfigError(fmt::format("config file '{}' is not valid YAML: {}", file.string(), e.what()));
    }
    return ConfigReader(root, "", file.string());
}

ConfigReader ConfigReader::load_string(const std::string& text, std::string source) {
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
        throw ConfigError(fmt::format("config {} is not valid YAML: {}", source, e.what()));
    }
    return ConfigReader(root, "", std::move(source));
}

std::string ConfigReader::key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

std::string ConfigReader::where(const YAML::Node& n) const {
    const auto mark = n.Mark();
    if (mark.line >= 0) return fmt::format(" ({}:{})", source_, mark.line + 1);
    return fmt::format(" ({})", source_);
}

YAML::Node ConfigReader::lookup(const std::string& key) const {
    used_->insert(key);
    const YAML::Node& self = node_;
    if (!self.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    return self[key];
}

bool ConfigReader::has(const std::string& key) const {
    const YAML::Node& self = node_;
    return self.IsMap() && self[key].IsDefined() && !self[key].IsNull();
}

void ConfigReader::mark_used(const std::string& key) const { used_->insert(key); }

template <class T>
T ConfigReader::get(const std::string& key) const {
    YAML::Node n = lookup(key);
    if (!n.IsDefined() || n.IsNull()) {
        throw ConfigError(fmt::format("config key '{}' is required but missing ({})", key_path(key), source_));
    }
    return Converter<T>::run(n, key_path(key), where(n));
}

template <class T>
T ConfigReader::get_or(const std::string& key, const T& fallback) const {
    YAML::Node n = lookup(key);
    if (!n.IsDefined() || n.IsNull()) return fallback;
    return Converter<T>::run(n, key_path(key), where(n));
}

ConfigReader ConfigReader::section(const std::string& key) const {
    YAML::Node n = lookup(key);
    if (!n.IsDefined() || n.IsNull()) return ConfigReader(YAML::Node(YAML::NodeType::Map), key_path(key), source_);
    if (!n.IsMap()) {
        throw ConfigError(
            fmt::format("config key '{}'{}: expected a mapping, got {}", key_path(key), where(n), node_kind(n)));
    }
    return ConfigReader(n, key_path(key), source_);
}

std::vector<std::string> ConfigReader::keys() const {
    std::vector<std::string> out;
    if (!node_.IsMap()) return out;
    for (const auto& kv : node_) out.push_back(kv.first.as<std::string>());
    return out;
}

void ConfigReader::finish() const {
    std::vector<std::string> unknown;
    for (const auto& k : keys()) {
        if (!used_->count(k)) unknown.push_back("'" + key_path(k) + "'");
    }
    if (unknown.empty()) return;
    std::vector<std::string> known(used_->begin(), used_->end());
    throw ConfigError(fmt::format("unknown config key{} {} in {} (known keys{}: {})", unknown.size() > 1 ? "s" : "",
                                  fmt::join(unknown, ", "), source_, path_.empty() ? "" : " of '" + path_ + "'",
                                  fmt::join(known, ", ")));
}

#define IPA_CONFIG_INSTANTIATE(T)                              \
    template T ConfigReader::get<T>(const std::string&) const; \
    template T ConfigReader::get_or<T>(const std::string&, const T&) const;
IPA_CONFIG_INSTANTIATE(bool)
IPA_CONFIG_INSTANTIATE(int)
IPA_CONFIG_INSTANTIATE(int64_t)
IPA_CONFIG_INSTANTIATE(uint64_t)
IPA_CONFIG_INSTANTIATE(float)
IPA_CONFIG_INSTANTIATE(double)
IPA_CONFIG_INSTANTIATE(std::string)
IPA_CONFIG_INSTANTIATE(std::filesystem::path)
IPA_CONFIG_INSTANTIATE(std::vector<int64_t>)
IPA_CONFIG_INSTANTIATE(std::vector<double>)
IPA_CONFIG_INSTANTIATE(std::vector<std::string>)
#undef IPA_CONFIG_INSTANTIATE

void apply_override(YAML::Node& root, const std::string& assignment) {
    const auto eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0) {
        throw ConfigError(fmt::format("override '{}': expected section.key=value (e.g. optim.lr=5e-5)", assignment));
    }
    const std::string path = assignment.substr(0, eq);
    const std::string text = assignment.substr(eq + 1);
    std::vector<std::string> parts;
    std::stringstream ss(path);
    for (std::string part; std::getline(ss, part, '.');) {
        if (part.empty()) {
            throw ConfigError(fmt::format("override '{}': empty component in key path '{}'", assignment, path));
        }
        parts.push_back(part);
    }
    if (parts.empty() || path.back() == '.') {
        throw ConfigError(fmt::format("override '{}': empty key path", assignment));
    }
    YAML::Node value;
    try {
        value = YAML::Load(text);
    } catch (const YAML::Exception& e) {
        throw ConfigError(fmt::format("override '{}': value is not valid YAML: {}", assignment, e.what()));
    }
    if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
    std::vector<YAML::Node> chain{root};
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        YAML::Node cur = chain.back();
        YAML::Node next = cur[parts[i]];
        if (!next.IsDefined() || next.IsNull()) {
            cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
            next = cur[parts[i]];
        } else if (!next.IsMap()) {
            throw ConfigError(fmt::format("override '{}': '{}' is not a section", assignment, parts[i]));
        }
        chain.push_back(next);
    }
    chain.back()[parts.back()] = value;
}

std::string to_yaml_string(const YAML::Node& node) {
    YAML::Emitter out;
    out << node;
    return std::string(out.c_str());
}

}  // namespace ipa
