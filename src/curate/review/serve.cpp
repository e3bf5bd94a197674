#include "ipa/curate/review/serve.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <thread>

#include "ipa/core/error.h"
#include "ipa/curate/review/index_html.h"
#include "ipa/curate/review/ranking.h"
#include "serve_page.h"

namespace ipa::curate::review {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::size_t kMaxBody = 64 * 1024;  // a decision is a few hundred bytes
constexpr std::size_t kMaxNote = 2000;
const char* const kMediaKinds[] = {"video", "pose", "reference", "sheet"};

/// json::dump that never throws on invalid UTF-8 in manifest strings (replaced by U+FFFD).
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

SiteResponse json_response(int status, const json& j) {
    SiteResponse r;
    r.status = status;
    r.content_type = "application/json; charset=utf-8";
    r.body = dump(j);
    return r;
}

SiteResponse error_response(int status, const std::string& message) {
    return json_response(status, json{{"error", message}});
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string header(const SiteRequest& req, const std::string& name) {
    const auto it = req.headers.find(name);
    return it == req.headers.end() ? std::string() : it->second;
}

/// "/media/<row>/<kind>" -> (row, kind); nullopt for anything else (no normalisation: a
/// path with "..", "//", a sign or a leading zero is not a media URL).
std::optional<std::pair<std::size_t, std::string>> parse_media_path(const std::string& path) {
    static const std::string prefix = "/media/";
    if (path.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    const auto slash = path.find('/', prefix.size());
    if (slash == std::string::npos) return std::nullopt;
    const std::string num = path.substr(prefix.size(), slash - prefix.size());
    if (num.empty() || num.size() > 9 || (num.size() > 1 && num[0] == '0')) return std::nullopt;
    if (!std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
    const std::string kind = path.substr(slash + 1);
    if (std::find(std::begin(kMediaKinds), std::end(kMediaKinds), kind) == std::end(kMediaKinds)) {
        return std::nullopt;
    }
    return std::make_pair(static_cast<std::size_t>(std::stoul(num)), kind);
}

/// True when `p` (resolved) lies inside `dir` (resolved).
bool inside(const fs::path& p, const fs::path& dir) {
    std::error_code ec;
    const fs::path cp = fs::canonical(p, ec);
    if (ec) return false;
    const fs::path cd = fs::canonical(dir, ec);
    if (ec) return false;
    const fs::path rel = cp.lexically_relative(cd);
    return !rel.empty() && *rel.begin() != ".." && rel != ".";
}

/// The ETag of the decisions log: its size and modification time (a new line changes both).
std::string log_etag(const fs::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return "\"none\"";
    return fmt::format("\"{}-{}.{}\"", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

json record_json(const DecisionRecord& r) {
    return json{
        {"decision", std::string(to_string(r.decision))}, {"note", r.note}, {"reviewer", r.reviewer}, {"time", r.time}};
}

std::string authority_of(const std::string& host, int port) {
    return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

}  // namespace

bool is_loopback_host(const std::string& host) {
    std::string h = host;
    if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const int rc = ::getaddrinfo(h.c_str(), nullptr, &hints, &res);
    if (rc != 0) throw ConfigError(fmt::format("--host '{}' does not resolve: {}", host, ::gai_strerror(rc)));
    bool all = res != nullptr;
    for (const addrinfo* a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            const auto* in = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
            all = all && (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        } else if (a->ai_family == AF_INET6) {
            const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
            const bool v4_loop = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
            all = all && (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) || v4_loop);
        } else {
            all = false;
        }
    }
    ::freeaddrinfo(res);
    return all;
}

void check_bind_host(const std::string& host, bool allow_remote) {
    if (allow_remote || is_loopback_host(host)) return;
    throw ConfigError(
        fmt::format("--host '{}' is not a loopback address: the review page would be reachable from other machines "
                    "(anyone who can connect could read the candidates and write decisions). Pass --allow-remote to "
                    "do this on purpose, or use the default --host 127.0.0.1 (an SSH tunnel reaches it remotely)",
                    host));
}

std::optional<std::string> media_content_type(const fs::path& file) {
    static const std::map<std::string, std::string> types = {
        {".mp4", "video/mp4"},       {".m4v", "video/mp4"},       {".webm", "video/webm"}, {".mkv", "video/x-matroska"},
        {".mov", "video/quicktime"}, {".avi", "video/x-msvideo"}, {".png", "image/png"},   {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},     {".gif", "image/gif"},       {".webp", "image/webp"}, {".bmp", "image/bmp"}};
    const auto it = types.find(lower(file.extension().string()));
    if (it == types.end()) return std::nullopt;
    return it->second;
}

ReviewSite::ReviewSite(const fs::path& manifest, const fs::path& scores, const fs::path& decisions,
                       const ServeOptions& opts)
    : manifest_(read_manifest(manifest)),
      scores_(read_scores(scores)),
      failures_(read_score_failures(scores)),
      scores_path_(scores),
      decisions_(decisions),
      opts_(opts) {
    rank_candidates(manifest_, scores_, scores);  // scores of another manifest: DataError now
    std::set<std::string> ids;
    for (std::size_t i = 0; i < manifest_.rows.size(); ++i) {
        row_of_[manifest_.rows[i].id] = i;
        ids.insert(manifest_.rows[i].id);
    }
    DecisionLog::open(decisions_).check_ids(ids, manifest_.path);  // creates the log when missing
    if (opts_.sheets_dir && !fs::is_directory(*opts_.sheets_dir)) {
        throw DataError(fmt::format("--sheets '{}' is not a directory", opts_.sheets_dir->string()));
    }
    media_.resize(manifest_.rows.size());
    for (std::size_t i = 0; i < manifest_.rows.size(); ++i) {
        const auto& row = manifest_.rows[i];
        const std::pair<const char*, fs::path> files[] = {
            {"video", row.video},
            {"pose", row.vace_video},
            {"reference", row.vace_reference_image},
            {"sheet", opts_.sheets_dir ? *opts_.sheets_dir / sheet_filename(row.id) : fs::path()}};
        for (const auto& [kind, file] : files) {
            if (file.empty()) continue;
            media_[i][kind] = file;
            media_of_.emplace(file, std::make_pair(i, std::string(kind)));
        }
    }
}

std::optional<fs::path> ReviewSite::media_file(std::size_t row, const std::string& kind) const {
    if (row >= media_.size()) return std::nullopt;
    const auto it = media_[row].find(kind);
    if (it == media_[row].end()) return std::nullopt;
    const fs::path& file = it->second;
    std::error_code ec;
    if (!fs::is_regular_file(file, ec) || !media_content_type(file)) return std::nullopt;
    // A contact sheet is looked up by name in --sheets: it must not lead out of it.
    if (kind == "sheet" && !inside(file, *opts_.sheets_dir)) {
        spdlog::warn("serve: contact sheet '{}' resolves outside --sheets '{}'; not served", file.string(),
                     opts_.sheets_dir->string());
        return std::nullopt;
    }
    return file;
}

std::string ReviewSite::page() const {
    const auto log = DecisionLog::read(decisions_);
    IndexOptions io;
    io.sheets_dir = opts_.sheets_dir;
    io.decisions = &log;
    io.failures = failures_;
    io.title = opts_.title;
    io.href = [this](const fs::path& file) {  // only files /media/ would serve get a link
        const auto it = media_of_.find(file);
        if (it == media_of_.end() || !media_file(it->second.first, it->second.second)) return std::string();
        return fmt::format("/media/{}/{}", it->second.first, it->second.second);
    };
    io.head_extra = serve_page::head();
    io.body_top = serve_page::viewer(opts_.reviewer, decisions_.string());
    io.body_end = serve_page::script();
    return render_index_html(".", manifest_, scores_, io);
}

std::string ReviewSite::state_json() const {
    const auto log = DecisionLog::read(decisions_);
    json decisions = json::object();
    std::map<std::string, int64_t> counts{{"good", 0}, {"bad", 0}, {"skip", 0}};
    for (const auto& [id, r] : log.effective()) {
        if (!row_of_.count(id)) continue;  // an id `mark` could not have written; checked at start
        decisions[id] = record_json(r);
        ++counts[std::string(to_string(r.decision))];
    }
    const auto decided = static_cast<int64_t>(decisions.size());
    const auto undo = log.last_effective_id();
    json j{{"candidates", manifest_.rows.size()},
           {"decided", decided},
           {"counts",
            {{"good", counts["good"]},
             {"bad", counts["bad"]},
             {"skip", counts["skip"]},
             {"undecided", static_cast<int64_t>(manifest_.rows.size()) - decided}}},
           {"undo_id", undo ? json(*undo) : json(nullptr)},
           {"decisions", decisions}};
    return dump(j);
}

std::string ReviewSite::candidates_json() const {
    std::map<std::string, std::string> failed;
    for (const auto& f : failures_) failed[f.id] = f.reason;
    json rows = json::array();
    int64_t rank = 0;
    for (const auto& c : rank_candidates(manifest_, scores_, scores_path_)) {
        const std::size_t i = row_of_.at(c.row->id);
        json media = json::object();
        for (const auto& [kind, file] : media_[i]) {
            if (media_file(i, kind)) media[kind] = fmt::format("/media/{}/{}", i, kind);
        }
        json r{{"id", c.row->id}, {"rank", ++rank}, {"prompt", c.row->prompt}, {"media", media}};
        if (c.score) {
            r["score"] = c.score->score;
            r["pass"] = c.score->pass;
            r["group"] = c.score->group;
            json stats = json::array();
            for (const auto& [k, v] : main_stats(*c.score, 8)) stats.push_back(json::array({k, format_number(v)}));
            r["stats"] = stats;
        } else if (failed.count(c.row->id)) {
            r["failed"] = failed[c.row->id];
        }
        rows.push_back(r);
    }
    return dump(json{{"rows", rows}, {"reviewer", opts_.reviewer}, {"decisions_log", decisions_.string()}});
}

std::pair<int, std::string> ReviewSite::decide(const std::string& body) const {
    auto err = [](int status, const std::string& m) { return std::make_pair(status, dump(json{{"error", m}})); };
    json j;
    try {
        j = json::parse(body);
    } catch (const json::exception& e) {
        return err(400, fmt::format("the body is not JSON: {}", e.what()));
    }
    if (!j.is_object()) return err(400, "the body must be a JSON object {\"id\", \"decision\", \"note\"}");
    for (const auto& [k, v] : j.items()) {
        if (k != "id" && k != "decision" && k != "note") return err(400, fmt::format("unknown key '{}'", k));
        if (!v.is_string()) return err(400, fmt::format("'{}' must be a string", k));
    }
    if (!j.contains("decision")) return err(400, "missing 'decision' (good, bad, skip or undo)");
    const std::string word = j["decision"].get<std::string>();
    Decision d;
    try {
        d = parse_decision(word, "decision");
    } catch (const DataError& e) {
        return err(400, e.what());
    }
    std::string id = j.value("id", std::string());
    const std::string note = j.value("note", std::string());
    if (note.size() > kMaxNote) return err(400, fmt::format("note longer than {} bytes", kMaxNote));
    if (id.empty() && d != Decision::undo) return err(400, "missing 'id'");
    if (!id.empty() && !row_of_.count(id)) {
        return err(404, fmt::format("'{}' is not a candidate of manifest '{}'", id, manifest_.path.string()));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    try {
        auto log = DecisionLog::open(decisions_);  // the current log, with lines `mark` appended meanwhile
        if (d == Decision::undo) {
            if (id.empty()) {
                const auto last = log.last_effective_id();
                if (!last) return err(409, "nothing to undo: no decision is in effect");
                id = *last;
            } else if (!log.latest(id)) {
                return err(409, fmt::format("'{}' has no decision to undo", id));
            }
        }
        const auto rec = log.append(id, d, note, opts_.reviewer);
        spdlog::debug("serve: {} {}{}", id, to_string(d), note.empty() ? "" : " (note)");
        const auto now = log.latest(id);
        return {200, dump(json{{"id", id},
                               {"logged", std::string(to_string(rec.decision))},
                               {"decision", now ? json(record_json(*now)) : json(nullptr)}})};
    } catch (const Error& e) {
        spdlog::error("serve: cannot record '{}' {}: {}", id, word, e.what());
        return err(500, e.what());
    }
}

SiteResponse ReviewSite::handle(const SiteRequest& req, const std::string& authority) const {
    if (!opts_.allow_remote) {
        // Only this server's own name: a page of another site that rebinds its DNS name to
        // 127.0.0.1 sends its own name as Host and is refused.
        const std::string host = lower(header(req, "host"));
        const std::string port = authority.substr(authority.rfind(':') + 1);
        if (host != lower(authority) && host != "localhost:" + port) {
            return error_response(403, fmt::format("unexpected Host '{}' (this server is {})", host, authority));
        }
    }
    const bool get = req.method == "GET" || req.method == "HEAD";
    if (req.path == "/" || req.path == "/index.html") {
        if (!get) return error_response(405, "use GET");
        SiteResponse r;
        r.content_type = "text/html; charset=utf-8";
        r.body = page();
        return r;
    }
    if (req.path == "/api/state" || req.path == "/api/candidates") {
        if (!get) return error_response(405, "use GET");
        SiteResponse r;
        r.content_type = "application/json; charset=utf-8";
        r.body = req.path == "/api/state" ? state_json() : candidates_json();
        return r;
    }
    if (req.path == "/api/decide") {
        if (req.method != "POST") return error_response(405, "use POST");
        // A JSON content type cannot be sent cross-origin without a CORS preflight (which is
        // never answered), and a browser's Origin must be this server.
        if (lower(header(req, "content-type")).rfind("application/json", 0) != 0) {
            return error_response(415, "POST /api/decide takes Content-Type: application/json");
        }
        const std::string origin = header(req, "origin");
        if (!origin.empty() && lower(origin) != "http://" + lower(header(req, "host"))) {
            return error_response(403, fmt::format("cross-origin request from '{}' refused", origin));
        }
        if (req.body.size() > kMaxBody) return error_response(413, "body too large");
        const auto [status, body] = decide(req.body);
        SiteResponse r;
        r.status = status;
        r.content_type = "application/json; charset=utf-8";
        r.body = body;
        return r;
    }
    if (const auto media = parse_media_path(req.path)) {
        if (!get) return error_response(405, "use GET");
        const auto file = media_file(media->first, media->second);
        if (!file) return error_response(404, "not found");
        SiteResponse r;
        r.content_type = *media_content_type(*file);
        r.file = *file;
        return r;
    }
    return error_response(404, "not found");
}

// ---- the HTTP server ----

struct ReviewServer::Impl {
    std::shared_ptr<const ReviewSite> site;
    httplib::Server svr;
    std::thread thread;
    std::string authority;
    bool started = false;
};

namespace {

void reply(const ReviewSite& site, const std::string& authority, const httplib::Request& req, httplib::Response& res) {
    SiteRequest sr;
    sr.method = req.method;
    sr.path = req.path;
    sr.body = req.body;
    for (const auto& [k, v] : req.headers) sr.headers.emplace(lower(k), v);
    // The state's ETag is taken before the log is read: the answer is never older than its tag.
    const bool state = req.path == "/api/state";
    const std::string etag = state ? log_etag(site.decisions_path()) : std::string();
    SiteResponse r;
    try {
        r = site.handle(sr, authority);
    } catch (const std::exception& e) {
        spdlog::error("serve: {} {}: {}", req.method, req.path, e.what());
        r = error_response(500, e.what());
    }
    // A 200 is left to httplib, which answers 206 to a Range request (it cuts the range itself).
    if (r.status != 200) res.status = r.status;
    if (r.status == 200 && state) {
        res.set_header("ETag", etag);
        if (req.get_header_value("If-None-Match") == etag) {
            res.status = 304;
            return;
        }
    }
    if (!r.file) {
        res.set_content(r.body, r.content_type.c_str());
        return;
    }
    std::error_code ec;
    const auto size = fs::file_size(*r.file, ec);
    if (ec) {
        res.status = 404;
        res.set_content(dump(json{{"error", "not found"}}), "application/json");
        return;
    }
    if (size == 0) {
        res.set_content(std::string(), r.content_type.c_str());
        return;
    }
    const fs::path file = *r.file;
    res.set_content_provider(static_cast<std::size_t>(size), r.content_type.c_str(),
                             [file](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                                 std::ifstream in(file, std::ios::binary);
                                 in.seekg(static_cast<std::streamoff>(offset));
                                 std::vector<char> buf(std::min<std::size_t>(length, 1 << 16));
                                 in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
                                 const auto n = static_cast<std::size_t>(in.gcount());
                                 if (n == 0) return false;  // the file shrank underneath
                                 sink.write(buf.data(), n);
                                 return true;
                             });
}

}  // namespace

ReviewServer::ReviewServer(std::shared_ptr<const ReviewSite> site, const ServeOptions& opts)
    : impl_(std::make_unique<Impl>()), host_(opts.host) {
    check_bind_host(opts.host, opts.allow_remote);
    impl_->site = std::move(site);
    auto& svr = impl_->svr;
    svr.set_payload_max_length(kMaxBody);
    svr.set_read_timeout(10, 0);
    svr.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                             {"Referrer-Policy", "no-referrer"},
                             {"Cache-Control", "no-store"},
                             {"X-Frame-Options", "DENY"},
                             {"Content-Security-Policy",
                              "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                              "img-src 'self'; media-src 'self'; connect-src 'self'; form-action 'none'; "
                              "base-uri 'none'; frame-ancestors 'none'"}});
    svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        spdlog::debug("serve: {} {} -> {}", req.method, req.path, res.status);
    });
    if (opts.port == 0) {
        port_ = svr.bind_to_any_port(opts.host);
    } else {
        port_ = svr.bind_to_port(opts.host, opts.port) ? opts.port : -1;
    }
    if (port_ <= 0) {
        throw ConfigError(fmt::format("cannot listen on {}:{} (address in use or not available on this machine?)",
                                      opts.host, opts.port));
    }
    impl_->authority = authority_of(opts.host, port_);
    const auto* site_ptr = impl_->site.get();
    const std::string authority = impl_->authority;
    auto handler = [site_ptr, authority](const httplib::Request& req, httplib::Response& res) {
        reply(*site_ptr, authority, req, res);
    };
    svr.Get(".*", handler);
    svr.Post(".*", handler);
}

ReviewServer::~ReviewServer() { stop(); }

std::string ReviewServer::url() const { return "http://" + impl_->authority + "/"; }

void ReviewServer::start() {
    if (impl_->started) return;
    impl_->started = true;
    impl_->thread = std::thread([this] { impl_->svr.listen_after_bind(); });
    // httplib's stop() does nothing before the loop runs: wait for it, so stop() always ends it.
    for (int i = 0; i < 5000 && !impl_->svr.is_running(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void ReviewServer::stop() {
    if (!impl_) return;
    impl_->svr.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

void run_serve(const fs::path& manifest, const fs::path& scores, const fs::path& decisions, const ServeOptions& opts,
               std::ostream& out) {
    check_bind_host(opts.host, opts.allow_remote);
    // SIGINT/SIGTERM are blocked before any thread exists (every thread inherits the mask) and
    // taken below with sigwait: no handler runs inside the server's threads.
    sigset_t stop_signals, old_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
    struct Restore {
        sigset_t mask;
        ~Restore() { ::pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
    } restore{old_mask};

    auto site = std::make_shared<const ReviewSite>(manifest, scores, decisions, opts);
    ReviewServer server(site, opts);
    server.start();
    out << fmt::format("serving the review of {} candidates at {} (decisions: {}; Ctrl-C stops)\n", site->candidates(),
                       server.url(), decisions.string())
        << std::flush;
    int sig = 0;
    ::sigwait(&stop_signals, &sig);
    spdlog::info("serve: {} received, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
    const auto counts = DecisionLog::read(decisions).counts();
    int64_t decided = 0;
    for (const auto& [k, n] : counts) decided += n;
    out << fmt::format("stopped; {} of {} candidates decided ({} good, {} bad, {} skip) in {}\n", decided,
                       site->candidates(), counts.at("good"), counts.at("bad"), counts.at("skip"), decisions.string());
}

}  // namespace ipa::curate::review
