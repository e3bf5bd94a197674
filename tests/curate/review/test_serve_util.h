#pragma once

// Child processes for the `ipa-curate serve` tests: the server itself (its URL read from its
// output, stopped by a signal) and chromedriver; and a command runner for mark/select.

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

namespace ipa::test {

/// A child process with stdout+stderr on a pipe (or appended to a file).
class ChildProcess {
public:
    ChildProcess() = default;
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (fd_ >= 0) ::close(fd_);
    }

    /// Starts argv[0] (a path) with `argv`; output to a pipe, or to `log_file` when given.
    bool start(const std::vector<std::string>& argv, const std::string& log_file = "") {
        int p[2] = {-1, -1};
        if (log_file.empty() && ::pipe(p) != 0) return false;
        pid_ = ::fork();
        if (pid_ < 0) return false;
        if (pid_ == 0) {
            int out = p[1];
            if (!log_file.empty()) out = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(out, STDOUT_FILENO);
            ::dup2(out, STDERR_FILENO);
            const int devnull = ::open("/dev/null", O_RDONLY);
            ::dup2(devnull, STDIN_FILENO);
            std::vector<char*> args;
            for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        if (log_file.empty()) {
            ::close(p[1]);
            fd_ = p[0];
        }
        return true;
    }

    /// Reads output until it contains `needle` or `timeout_s` passes (or the pipe closes).
    bool wait_for(const std::string& needle, double timeout_s) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        while (output_.find(needle) == std::string::npos) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
            if (left <= 0 || !read_some(static_cast<int>(left))) return false;
        }
        return true;
    }

    /// Sends `sig` and waits; the exit code, or 128 + signal when killed by one.
    int stop(int sig = SIGTERM) {
        if (pid_ <= 0) return -1;
        ::kill(pid_, sig);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        while (fd_ >= 0 && read_some(1000)) {
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

    const std::string& output() const { return output_; }
    pid_t pid() const { return pid_; }

private:
    bool read_some(int timeout_ms) {
        if (fd_ < 0) return false;
        pollfd pfd{fd_, POLLIN, 0};
        if (::poll(&pfd, 1, timeout_ms) <= 0) return false;
        char buf[4096];
        const ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n <= 0) {
            ::close(fd_);
            fd_ = -1;
            return false;
        }
        output_.append(buf, static_cast<std::size_t>(n));
        return true;
    }

    pid_t pid_ = -1;
    int fd_ = -1;
    std::string output_;
};

/// Runs a shell command line; (exit code, stdout+stderr).
inline std::pair<int, std::string> run_command(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen((cmd + " </dev/null 2>&1").c_str(), "r");
    if (!p) return {-1, out};
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    const int status = ::pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

/// A TCP port free on 127.0.0.1 right now (for a child that needs a fixed --port).
inline int free_port() {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
        port = ntohs(a.sin_port);
    }
    ::close(s);
    return port;
}

/// "http://127.0.0.1:PORT/" somewhere in `text` -> PORT (-1 when absent).
inline int port_in_url(const std::string& text) {
    const auto at = text.find("http://127.0.0.1:");
    if (at == std::string::npos) return -1;
    return std::atoi(text.c_str() + at + 17);
}

}  // namespace ipa::test
