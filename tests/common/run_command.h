#pragma once

// The CLI tests' way of running a program: exit code and output (header-only, tests only).

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace ipa::test {

struct CommandResult {
    int rc = -1;      ///< exit status; -1 when the command did not exit normally
    std::string out;  ///< stdout and stderr together
};

/// Runs `command` with /bin/sh (stderr joined to stdout; stdin as the command redirects it).
inline CommandResult run_command(const std::string& command) {
    CommandResult r;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (!p) return r;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
    const int status = ::pclose(p);
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

/// A path in single quotes for a shell command.
inline std::string shell_quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

}  // namespace ipa::test
