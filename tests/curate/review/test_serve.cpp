// `ipa-curate serve` without a browser: host checks, routing, the media whitelist against
// path traversal, escaping, POST /api/decide -> the decisions log, and the real binary
// serving while `ipa-curate mark` writes the same log.

#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "../../common/test_util.h"
#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/curate/review/decisions.h"
#include "ipa/curate/review/ranking.h"
#include "ipa/curate/review/serve.h"
#include "review_test_util.h"
#include "test_serve_util.h"

namespace fs = std::filesystem;
namespace rv = ipa::curate::review;
using nlohmann::json;

namespace {

const std::string kEvilId = "<script>alert(1)</script>";

/// A round on disk: manifest (4 rows, one with an HTML id), scores, sheets, a reference
/// image and a pose video for row 0, a secret file beside the manifest.
struct Round {
    fs::path dir, manifest, scores, decisions, sheets;
    std::vector<std::string> ids;

    explicit Round(const fs::path& d) : dir(d) {
        ids = {"c0", "c1", kEvilId, "a&b"};
        auto m = ipa::test::small_manifest(dir, ids);
        ipa::write_file_atomic(dir / "pose0.mp4", "pose-bytes");
        ipa::write_file_atomic(dir / "ref0.png", "ref-bytes");
        m.rows[0].vace_video = dir / "pose0.mp4";
        m.rows[0].vace_reference_image = dir / "ref0.png";
        m.rows[1].vace_reference_image = dir / "secret.txt";  // not a media type: never served
        m.columns.insert(m.columns.begin() + 3, {"vace_video", "vace_reference_image"});
        ipa::write_file_atomic(dir / "secret.txt", "top secret");
        manifest = dir / "candidates.csv";
        m.path = manifest;
        ipa::curate::write_manifest(manifest, m);
        ipa::curate::write_scores(dir / "scores",
                                  ipa::test::small_scores({{"c0", 0.9}, {"c1", 0.4}, {kEvilId, 0.7}, {"a&b", 0.6}}));
        scores = dir / "scores" / "scores.json";
        decisions = dir / "decisions.csv";
        sheets = dir / "sheets";
        fs::create_directories(sheets);
        for (const auto& id : ids) ipa::write_file_atomic(sheets / rv::sheet_filename(id), "png-of-" + id);
    }

    rv::ServeOptions options() const {
        rv::ServeOptions o;
        o.sheets_dir = sheets;
        o.reviewer = "tester";
        return o;
    }
};

constexpr const char* kAuthority = "127.0.0.1:8123";

rv::SiteRequest get(const std::string& path) {
    rv::SiteRequest r;
    r.method = "GET";
    r.path = path;
    r.headers["host"] = kAuthority;
    return r;
}

rv::SiteRequest post(const json& body) {
    rv::SiteRequest r;
    r.method = "POST";
    r.path = "/api/decide";
    r.headers["host"] = kAuthority;
    r.headers["content-type"] = "application/json";
    r.body = body.dump();
    return r;
}

}  // namespace

TEST(ServeHost, LoopbackOnlyUnlessAllowed) {
    EXPECT_TRUE(rv::is_loopback_host("127.0.0.1"));
    EXPECT_TRUE(rv::is_loopback_host("127.3.2.1"));
    EXPECT_TRUE(rv::is_loopback_host("::1"));
    EXPECT_TRUE(rv::is_loopback_host("[::1]"));
    EXPECT_TRUE(rv::is_loopback_host("localhost"));
    EXPECT_FALSE(rv::is_loopback_host("0.0.0.0"));
    EXPECT_FALSE(rv::is_loopback_host("::"));
    EXPECT_FALSE(rv::is_loopback_host("10.1.2.3"));
    EXPECT_NO_THROW(rv::check_bind_host("127.0.0.1", false));
    const auto msg = ipa::test::error_of<ipa::ConfigError>([] { rv::check_bind_host("0.0.0.0", false); });
    EXPECT_CONTAINS(msg, "--host '0.0.0.0' is not a loopback address");
    EXPECT_CONTAINS(msg, "--allow-remote");
    EXPECT_NO_THROW(rv::check_bind_host("0.0.0.0", true));
    EXPECT_THROW(rv::is_loopback_host("no-such-host.invalid"), ipa::ConfigError);

    // The binary refuses before reading anything, with the ConfigError exit code.
    const auto [rc, out] = ipa::test::run_command(std::string(IPA_CURATE_BIN) +
                                                  " serve --manifest m.csv --scores s.json --decisions d.csv "
                                                  "--host 0.0.0.0");
    EXPECT_EQ(rc, 3) << out;
    EXPECT_CONTAINS(out, "not a loopback address");
}

TEST(ServeSite, RoutesPageStateAndEscaping) {
    ipa::test::TempDir tmp("serve");
    Round round(tmp.path);
    const rv::ReviewSite site(round.manifest, round.scores, round.decisions, round.options());
    EXPECT_TRUE(fs::exists(round.decisions));  // created with its header

    auto r = site.handle(get("/"), kAuthority);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    EXPECT_EQ(r.body.find(kEvilId), std::string::npos);  // the id never appears raw
    EXPECT_CONTAINS(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;");
    EXPECT_CONTAINS(r.body, "a&amp;b");
    EXPECT_CONTAINS(r.body, "<div id=\"viewer\">");
    EXPECT_CONTAINS(r.body, "href=\"/media/0/video\"");
    EXPECT_CONTAINS(r.body, "src=\"/media/0/sheet\"");
    EXPECT_CONTAINS(r.body, "href=\"/media/0/pose\"");
    EXPECT_CONTAINS(r.body, "reference image missing: secret.txt");             // not linked: not a media type
    EXPECT_EQ(r.body.find(round.dir.string() + "/videos"), std::string::npos);  // no file paths in links
    EXPECT_EQ(site.handle(get("/index.html"), kAuthority).status, 200);

    r = site.handle(get("/api/candidates"), kAuthority);
    ASSERT_EQ(r.status, 200);
    const auto c = json::parse(r.body);
    ASSERT_EQ(c["rows"].size(), 4u);
    EXPECT_EQ(c["rows"][0]["id"], "c0");  // best score first
    EXPECT_EQ(c["rows"][1]["id"], kEvilId);
    EXPECT_EQ(c["rows"][0]["media"]["reference"], "/media/0/reference");
    EXPECT_FALSE(c["rows"][3]["media"].contains("reference"));  // c1's secret.txt
    EXPECT_EQ(c["rows"][3]["pass"], false);

    r = site.handle(get("/api/state"), kAuthority);
    ASSERT_EQ(r.status, 200);
    const auto s = json::parse(r.body);
    EXPECT_EQ(s["candidates"], 4);
    EXPECT_EQ(s["decided"], 0);
    EXPECT_TRUE(s["undo_id"].is_null());

    EXPECT_EQ(site.handle(get("/nope"), kAuthority).status, 404);
    EXPECT_EQ(site.handle(get("/api/decide"), kAuthority).status, 405);
    auto p = get("/");
    p.method = "POST";
    EXPECT_EQ(site.handle(p, kAuthority).status, 405);
}

TEST(ServeSite, MediaWhitelistRefusesTraversal) {
    ipa::test::TempDir tmp("serve");
    Round round(tmp.path);
    // A contact sheet that is a symlink out of the sheets directory.
    ipa::write_file_atomic(tmp.path / "outside.png", "outside");
    fs::remove(round.sheets / rv::sheet_filename("c1"));
    fs::create_symlink(tmp.path / "outside.png", round.sheets / rv::sheet_filename("c1"));
    const rv::ReviewSite site(round.manifest, round.scores, round.decisions, round.options());

    auto r = site.handle(get("/media/0/video"), kAuthority);
    ASSERT_EQ(r.status, 200);
    ASSERT_TRUE(r.file);
    EXPECT_EQ(fs::canonical(*r.file), fs::canonical(round.dir / "videos" / "v0.mp4"));
    EXPECT_EQ(r.content_type, "video/mp4");
    EXPECT_EQ(site.handle(get("/media/0/sheet"), kAuthority).content_type, "image/png");
    EXPECT_EQ(site.handle(get("/media/0/reference"), kAuthority).status, 200);

    const std::string abs = (round.dir / "secret.txt").string();
    for (const std::string path : {"/media/1/sheet",      // symlink leading out of --sheets
                                   "/media/1/reference",  // secret.txt: named by the manifest but not a media type
                                   "/media/2/pose",
                                   "/media/4/video",
                                   "/media/00/video",
                                   "/media/+0/video",
                                   "/media/-1/video",
                                   "/media/0/keypoints",
                                   "/media/0/video/",
                                   "/media/0/video/..",
                                   "/media/0/../../secret.txt",
                                   "/media/../secret.txt",
                                   "/../secret.txt",
                                   "/../../../../etc/passwd",
                                   "/media/0/..%2fsecret.txt",
                                   "//etc/passwd",
                                   "/media//0/video",
                                   "/secret.txt",
                                   "/candidates.csv",
                                   "/decisions.csv"}) {
        EXPECT_EQ(site.handle(get(path), kAuthority).status, 404) << path;
    }
    EXPECT_EQ(site.handle(get(abs), kAuthority).status, 404);
    EXPECT_EQ(site.handle(get("/media/0" + abs), kAuthority).status, 404);
    EXPECT_FALSE(site.media_file(1, "sheet"));
    EXPECT_TRUE(site.media_file(0, "sheet"));
}

TEST(ServeSite, DecisionsGoToTheLog) {
    ipa::test::TempDir tmp("serve");
    Round round(tmp.path);
    const rv::ReviewSite site(round.manifest, round.scores, round.decisions, round.options());

    const std::string evil_note = "<img src=x onerror=alert(2)> & \"quoted\", thumb";
    auto r = site.handle(post({{"id", kEvilId}, {"decision", "good"}, {"note", evil_note}}), kAuthority);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body)["decision"]["decision"], "good");
    r = site.handle(post({{"id", "c1"}, {"decision", "bad"}}), kAuthority);
    ASSERT_EQ(r.status, 200) << r.body;

    auto log = rv::DecisionLog::read(round.decisions);
    ASSERT_EQ(log.records().size(), 2u);
    EXPECT_EQ(log.records()[0].id, kEvilId);
    EXPECT_EQ(log.records()[0].note, evil_note);
    EXPECT_EQ(log.records()[0].reviewer, "tester");
    EXPECT_EQ(log.records()[1].decision, rv::Decision::bad);

    // The note comes back escaped in the page, raw (it is JSON, not HTML) in the state.
    const auto page = site.handle(get("/"), kAuthority).body;
    EXPECT_EQ(page.find("<img src=x"), std::string::npos);
    EXPECT_CONTAINS(page, "&lt;img src=x onerror=alert(2)&gt; &amp; &quot;quoted&quot;, thumb");
    EXPECT_CONTAINS(page, "1 good, 1 bad, 0 skip, 2 undecided");
    auto s = json::parse(site.handle(get("/api/state"), kAuthority).body);
    EXPECT_EQ(s["decided"], 2);
    EXPECT_EQ(s["decisions"][kEvilId]["note"], evil_note);
    EXPECT_EQ(s["undo_id"], "c1");

    // undo without an id retracts the most recent decision in effect.
    r = site.handle(post({{"decision", "undo"}}), kAuthority);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body)["id"], "c1");
    EXPECT_TRUE(json::parse(r.body)["decision"].is_null());
    s = json::parse(site.handle(get("/api/state"), kAuthority).body);
    EXPECT_EQ(s["decided"], 1);
    EXPECT_EQ(s["undo_id"], kEvilId);
    EXPECT_EQ(rv::DecisionLog::read(round.decisions).records().back().decision, rv::Decision::undo);

    // Refusals: nothing is written.
    const auto lines_before = rv::DecisionLog::read(round.decisions).records().size();
    EXPECT_EQ(site.handle(post({{"id", "c0"}, {"decision", "great"}}), kAuthority).status, 400);
    EXPECT_EQ(site.handle(post({{"id", "nope"}, {"decision", "good"}}), kAuthority).status, 404);
    EXPECT_EQ(site.handle(post({{"decision", "good"}}), kAuthority).status, 400);
    EXPECT_EQ(site.handle(post({{"id", "c0"}}), kAuthority).status, 400);
    EXPECT_EQ(site.handle(post({{"id", "c0"}, {"decision", "good"}, {"extra", "x"}}), kAuthority).status, 400);
    EXPECT_EQ(site.handle(post({{"id", 3}, {"decision", "good"}}), kAuthority).status, 400);
    EXPECT_EQ(site.handle(post(json::array({"c0", "good"})), kAuthority).status, 400);
    EXPECT_EQ(site.handle(post({{"id", "c0"}, {"decision", "undo"}}), kAuthority).status, 409);
    EXPECT_EQ(
        site.handle(post({{"id", "c0"}, {"decision", "good"}, {"note", std::string(3000, 'x')}}), kAuthority).status,
        400);
    auto bad = post({{"id", "c0"}, {"decision", "good"}});
    bad.body = "{not json";
    EXPECT_EQ(site.handle(bad, kAuthority).status, 400);
    bad = post({{"id", "c0"}, {"decision", "good"}});
    bad.headers["content-type"] = "text/plain";  // what a cross-site <form> could send
    EXPECT_EQ(site.handle(bad, kAuthority).status, 415);
    bad = post({{"id", "c0"}, {"decision", "good"}});
    bad.headers["origin"] = "http://evil.example";
    EXPECT_EQ(site.handle(bad, kAuthority).status, 403);
    bad = post({{"id", "c0"}, {"decision", "good"}});
    bad.headers["host"] = "evil.example:8123";  // DNS rebinding: another site's name
    EXPECT_EQ(site.handle(bad, kAuthority).status, 403);
    EXPECT_EQ(rv::DecisionLog::read(round.decisions).records().size(), lines_before);

    auto same_origin = post({{"id", "c0"}, {"decision", "skip"}});
    same_origin.headers["origin"] = std::string("http://") + kAuthority;
    EXPECT_EQ(site.handle(same_origin, kAuthority).status, 200);
    auto localhost = get("/api/state");
    localhost.headers["host"] = "localhost:8123";
    EXPECT_EQ(site.handle(localhost, kAuthority).status, 200);

    // Remote access allowed on purpose: any Host.
    auto o = round.options();
    o.allow_remote = true;
    const rv::ReviewSite open_site(round.manifest, round.scores, round.decisions, o);
    auto remote = get("/api/state");
    remote.headers["host"] = "review.lab:8123";
    EXPECT_EQ(open_site.handle(remote, kAuthority).status, 200);
}

TEST(ServeSite, RefusesALogOfAnotherManifest) {
    ipa::test::TempDir tmp("serve");
    Round round(tmp.path);
    ipa::write_file_atomic(round.decisions, "id,decision,note,reviewer,time\nzz9,good,,x,t\n");
    const auto msg = ipa::test::error_of<ipa::DataError>(
        [&] { rv::ReviewSite(round.manifest, round.scores, round.decisions, round.options()); });
    EXPECT_CONTAINS(msg, "not in manifest");
    EXPECT_CONTAINS(msg, "'zz9'");
}

TEST(ServeHttp, OverTheSocket) {
    ipa::test::TempDir tmp("serve");
    Round round(tmp.path);
    auto site = std::make_shared<const rv::ReviewSite>(round.manifest, round.scores, round.decisions, round.options());
    rv::ReviewServer server(site, round.options());
    ASSERT_GT(server.port(), 0);
    EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()) + "/");
    server.start();

    httplib::Client cli("127.0.0.1", server.port());
    cli.set_url_encode(false);  // send the paths exactly as written
    auto res = cli.Get("/");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("X-Content-Type-Options"), "nosniff");
    EXPECT_CONTAINS(res->get_header_value("Content-Security-Policy"), "default-src 'none'");

    // Encoded traversal reaches the router decoded and is refused like the plain one.
    for (const std::string path :
         {"/media/%2e%2e/secret.txt", "/%2e%2e/%2e%2e/etc/passwd", "/media/0/video%2f..%2f..%2fsecret.txt",
          "/media/0/%2e%2e%2f%2e%2e%2fsecret.txt", "/%2fetc%2fpasswd", "/media/1/reference"}) {
        res = cli.Get(path.c_str());
        ASSERT_TRUE(res) << path;
        EXPECT_EQ(res->status, 404) << path;
        EXPECT_EQ(res->body.find("secret"), std::string::npos) << path;
    }

    res = cli.Get("/media/0/sheet");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "png-of-c0");
    EXPECT_EQ(res->get_header_value("Content-Type"), "image/png");
    res = cli.Get("/media/0/sheet", {{"Range", "bytes=4-5"}});  // videos seek with ranges
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 206);
    EXPECT_EQ(res->body, "of");

    // A decision over HTTP, then the state's ETag answers 304 until the log changes.
    res = cli.Post("/api/decide", json{{"id", "c0"}, {"decision", "good"}}.dump(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
    res = cli.Post("/api/decide", "id=c0&decision=bad", "application/x-www-form-urlencoded");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 415);
    res = cli.Get("/api/state");
    ASSERT_TRUE(res);
    const std::string etag = res->get_header_value("ETag");
    ASSERT_FALSE(etag.empty());
    EXPECT_EQ(json::parse(res->body)["decided"], 1);
    res = cli.Get("/api/state", {{"If-None-Match", etag}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 304);
    res = cli.Post("/api/decide", json{{"id", "c1"}, {"decision", "bad"}}.dump(), "application/json");
    ASSERT_TRUE(res);
    res = cli.Get("/api/state", {{"If-None-Match", etag}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(json::parse(res->body)["decided"], 2);

    server.stop();
    server.stop();  // idempotent
    EXPECT_FALSE(cli.Get("/"));
}

// The binary serving while `ipa-curate mark` processes append to the same log: every line of
// both lands whole, the server's state shows the marks, SIGTERM stops it cleanly.
TEST(ServeCli, MarkWhileServing) {
    ipa::test::TempDir tmp("serve");
    Round round(tmp.path);
    const std::string bin = IPA_CURATE_BIN;
    ipa::test::ChildProcess serve;
    ASSERT_TRUE(serve.start({bin, "--log-level", "warn", "serve", "--manifest", round.manifest.string(), "--scores",
                             round.scores.string(), "--decisions", round.decisions.string(), "--sheets",
                             round.sheets.string(), "--reviewer", "web"}));
    ASSERT_TRUE(serve.wait_for("Ctrl-C stops", 60)) << serve.output();
    const int port = ipa::test::port_in_url(serve.output());
    ASSERT_GT(port, 0) << serve.output();

    constexpr int kRounds = 8;
    std::thread web([&] {
        httplib::Client cli("127.0.0.1", port);
        for (int i = 0; i < kRounds; ++i) {
            const char* word = i % 2 ? "bad" : "good";
            auto res = cli.Post("/api/decide", json{{"id", "c0"}, {"decision", word}}.dump(), "application/json");
            EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "no response");
        }
    });
    for (int i = 0; i < kRounds; ++i) {
        const auto [rc, out] = ipa::test::run_command(bin + " --log-level warn mark c1 " + (i % 2 ? "good" : "skip") +
                                                      " --reviewer cli --manifest '" + round.manifest.string() +
                                                      "' --decisions '" + round.decisions.string() + "'");
        EXPECT_EQ(rc, 0) << out;
    }
    web.join();

    const auto log = rv::DecisionLog::read(round.decisions);  // throws on a torn or mixed line
    EXPECT_EQ(log.torn_bytes(), 0);
    ASSERT_EQ(log.records().size(), 2u * kRounds);
    int web_lines = 0;
    for (const auto& r : log.records()) web_lines += r.reviewer == "web" ? 1 : 0;
    EXPECT_EQ(web_lines, kRounds);
    httplib::Client cli("127.0.0.1", port);
    auto res = cli.Get("/api/state");
    ASSERT_TRUE(res);
    const auto s = json::parse(res->body);
    EXPECT_EQ(s["decided"], 2);
    EXPECT_EQ(s["decisions"]["c0"]["decision"], "bad");   // the web's last
    EXPECT_EQ(s["decisions"]["c1"]["decision"], "good");  // mark's last
    EXPECT_EQ(s["decisions"]["c1"]["reviewer"], "cli");

    EXPECT_EQ(serve.stop(SIGTERM), 0) << serve.output();
    EXPECT_CONTAINS(serve.output(), "stopped; 2 of 4 candidates decided");
}
