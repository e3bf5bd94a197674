#pragma once

#include <stdexcept>
#include <string>

namespace ipa {

/// Base of every error the ipa libraries throw. Messages say what went wrong, where
/// (file, key, tensor name) and, where one helps, a hint.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A bad configuration: unknown key, wrong type, out-of-range value.
class ConfigError : public Error {
public:
    using Error::Error;
};

/// A checkpoint or weight file that cannot be read or does not fit the model.
class CheckpointError : public Error {
public:
    using Error::Error;
};

/// Bad input data: missing or corrupt media, manifests, caches, keypoints.
class DataError : public Error {
public:
    using Error::Error;
};

/// Distributed set-up or communication failure.
class DistError : public Error {
public:
    using Error::Error;
};

/// Process exit codes used by the apps, one per error class.
enum class ExitCode : int {
    ok = 0,
    usage = 2,
    config = 3,
    checkpoint = 4,
    data = 5,
    dist = 6,
    internal = 10,
};

/// Maps an exception to the exit code of its class.
ExitCode exit_code_for(const std::exception& e) noexcept;

/// Reports an error the way every ipa app does: "<app>: error: <first line>" on stderr,
/// further lines (e.g. all bad keys of a checkpoint) after it. Returns the exit code of
/// the error's class, for `return report_cli_error("ipa-train", e);` in main.
int report_cli_error(const char* app, const std::exception& e) noexcept;

}  // namespace ipa
