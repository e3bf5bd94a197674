#pragma once

// `ipa-curate serve`: the review of a curation round as a local web page. One page shows the
// current candidate's video, pose video and reference image side by side with its contact
// sheet and scores, above the index table (filters and sort of the static index); keys
// g/b/s/u/n mark it. Every decision is appended to the same decisions log as `mark` and
// `review` (DecisionLog: flock + one write per line), and the page's state is read back from
// that log, so a reload, a restart or a concurrent `ipa-curate mark` are all seen.
//
// What is served: the page, /api/state, POST /api/decide, and /media/<row>/<kind> for the
// files the manifest names (video, pose, reference) and the row's contact sheet. URLs name a
// manifest row and a kind, never a path, so no request can reach another file; a media file
// must be a regular file with a known image/video extension, and a contact sheet must
// resolve (symlinks followed) inside the sheets directory.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ipa/curate/manifest.h"
#include "ipa/curate/review/decisions.h"
#include "ipa/curate/score.h"

namespace ipa::curate::review {

/// Options of `ipa-curate serve`.
struct ServeOptions {
    std::string host = "127.0.0.1";
    int port = 0;               ///< 0: any free port
    bool allow_remote = false;  ///< needed to bind a non-loopback address
    std::optional<std::filesystem::path> sheets_dir;
    std::string reviewer;  ///< written with every decision
    std::string title = "ipa-curate review";
};

/// True when every address `host` resolves to is a loopback address (127.0.0.0/8, ::1).
/// An unresolvable host is an ipa::ConfigError naming it.
bool is_loopback_host(const std::string& host);

/// ipa::ConfigError unless `host` is loopback or `allow_remote` is set.
void check_bind_host(const std::string& host, bool allow_remote);

/// One HTTP request as the site sees it (already URL-decoded path; header names lower case).
struct SiteRequest {
    std::string method;  ///< "GET", "HEAD", "POST"
    std::string path;
    std::map<std::string, std::string> headers;
    std::string body;
};

/// A response: `body`, or the file to stream when `file` is set.
struct SiteResponse {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::optional<std::filesystem::path> file;
};

/// The review site without the socket: routing, file whitelist, decisions. Thread-safe.
class ReviewSite {
public:
    /// Reads the manifest and scores.json, opens (creates) the decisions log and checks its
    /// ids against the manifest (ipa::DataError naming the files otherwise).
    ReviewSite(const std::filesystem::path& manifest, const std::filesystem::path& scores,
               const std::filesystem::path& decisions, const ServeOptions& opts);

    /// Routes one request. `authority` is the host:port the server listens on (the Host
    /// header must name it unless remote access is allowed; an Origin on a POST must match).
    SiteResponse handle(const SiteRequest& req, const std::string& authority) const;

    /// The whole page (server-rendered from the current decisions log).
    std::string page() const;
    /// JSON: the effective decision per id, counts, "n of N decided" and the id an `undo`
    /// would retract.
    std::string state_json() const;
    /// JSON: the candidates best first (rank_candidates) with their media URLs, score, pass,
    /// group, main stats, prompt, or why scoring failed.
    std::string candidates_json() const;
    /// Applies a POST /api/decide body: {"id": ..., "decision": "good|bad|skip|undo",
    /// "note": ...}; `undo` without an id retracts the most recent decision still in effect.
    /// Returns (status, JSON body).
    std::pair<int, std::string> decide(const std::string& json_body) const;

    /// The file behind /media/<row>/<kind>, or nullopt (404).
    std::optional<std::filesystem::path> media_file(std::size_t row, const std::string& kind) const;

    std::size_t candidates() const { return manifest_.rows.size(); }
    const std::filesystem::path& decisions_path() const { return decisions_; }

private:
    Manifest manifest_;
    std::vector<CandidateScore> scores_;
    std::vector<RowFailure> failures_;
    std::filesystem::path scores_path_, decisions_;
    ServeOptions opts_;
    std::map<std::string, std::size_t> row_of_;                                      // id -> manifest row
    std::map<std::filesystem::path, std::pair<std::size_t, std::string>> media_of_;  // file -> (row, kind)
    std::vector<std::map<std::string, std::filesystem::path>> media_;                // per row: kind -> file
    mutable std::mutex mutex_;  // one decision at a time in this process
};

/// Content type for a served media file from its extension; nullopt for anything else.
std::optional<std::string> media_content_type(const std::filesystem::path& file);

/// The HTTP server around a ReviewSite (cpp-httplib, a small thread pool).
class ReviewServer {
public:
    /// Binds `opts.host`:`opts.port` (check_bind_host first); ipa::ConfigError naming the
    /// address when it cannot bind.
    ReviewServer(std::shared_ptr<const ReviewSite> site, const ServeOptions& opts);
    ~ReviewServer();
    ReviewServer(const ReviewServer&) = delete;
    ReviewServer& operator=(const ReviewServer&) = delete;

    int port() const { return port_; }
    /// "http://HOST:PORT/" (IPv6 hosts in brackets).
    std::string url() const;
    /// Serves on a background thread until stop().
    void start();
    /// Stops accepting, finishes the requests in flight, joins the thread. Idempotent.
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    int port_ = 0;
    std::string host_;
};

/// `ipa-curate serve`: builds the site, binds, prints the URL to `out`, serves until SIGINT
/// or SIGTERM (blocked in every thread and taken with sigwait), then stops cleanly.
void run_serve(const std::filesystem::path& manifest, const std::filesystem::path& scores,
               const std::filesystem::path& decisions, const ServeOptions& opts, std::ostream& out);

}  // namespace ipa::curate::review
