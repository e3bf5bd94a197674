// `ipa-curate serve` in a real headless browser: Debian's chromium driven by chromedriver
// over the W3C WebDriver protocol (JSON over HTTP, spoken here with cpp-httplib's client, so
// the test needs no Python or Selenium). On a synthetic round made by the binary (synth ->
// score -> sheets): open the page, mark three candidates by key presses (with an undo and a
// note on the way), reload, see them decided, stop the server with SIGTERM, `select` them.
// Skipped (GTEST_SKIP) when chromium or chromedriver is not installed.
//
// IPA_CHROMIUM / IPA_CHROMEDRIVER override the programs; IPA_SERVE_SCREENSHOT=FILE.png keeps
// a screenshot of the page after the reload (the README's picture).

#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>

#include "../../common/test_util.h"
#include "ipa/core/atomic_file.h"
#include "ipa/curate/manifest.h"
#include "ipa/curate/review/decisions.h"
#include "test_serve_util.h"

namespace fs = std::filesystem;
namespace rv = ipa::curate::review;
using nlohmann::json;

namespace {

std::string find_program(const char* env, const std::vector<std::string>& names) {
    if (const char* e = std::getenv(env)) return fs::exists(e) ? e : "";
    for (const auto& n : names) {
        for (const char* dir : {"/usr/bin/", "/usr/local/bin/", "/usr/lib/chromium/"}) {
            if (fs::exists(dir + n)) return dir + n;
        }
    }
    return "";
}

std::string base64_decode(const std::string& in) {
    static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        const auto v = chars.find(c);
        if (v == std::string::npos) continue;  // '=' padding, line breaks
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    return out;
}

/// A W3C WebDriver session on chromedriver.
class WebDriver {
public:
    explicit WebDriver(int port) : cli_("127.0.0.1", port) {
        cli_.set_connection_timeout(10, 0);
        cli_.set_read_timeout(120, 0);
    }

    /// True once chromedriver answers /status with ready.
    bool wait_ready(double timeout_s) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        while (std::chrono::steady_clock::now() < end) {
            if (auto res = cli_.Get("/status"); res && res->status == 200) {
                const auto j = json::parse(res->body, nullptr, false);
                if (!j.is_discarded() && j["value"].value("ready", false)) return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return false;
    }

    json call(const std::string& method, const std::string& path, const json& body = json::object()) {
        httplib::Result res = method == "GET"      ? cli_.Get(path.c_str())
                              : method == "DELETE" ? cli_.Delete(path.c_str())
                                                   : cli_.Post(path.c_str(), body.dump(), "application/json");
        if (!res) throw std::runtime_error(method + " " + path + ": no answer from chromedriver");
        auto j = json::parse(res->body, nullptr, false);
        if (j.is_discarded() || res->status != 200) {
            throw std::runtime_error(method + " " + path + ": HTTP " + std::to_string(res->status) + ": " +
                                     res->body.substr(0, 2000));
        }
        return j["value"];
    }

    void open_session(const std::string& chromium, const fs::path& profile) {
        const json caps = {{"capabilities",
                            {{"alwaysMatch",
                              {{"browserName", "chrome"},
                               {"goog:chromeOptions",
                                {{"binary", chromium},
                                 // Root (CI containers) needs --no-sandbox; a fresh profile per run.
                                 {"args",
                                  {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                   "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                                   "--window-size=1280,900", "--user-data-dir=" + profile.string()}}}}}}}}};
        session_ = "/session/" + call("POST", "/session", caps)["sessionId"].get<std::string>();
    }
    void close_session() {
        if (session_.empty()) return;
        try {
            call("DELETE", session_);
        } catch (const std::exception&) {
        }
        session_.clear();
    }
    ~WebDriver() { close_session(); }

    void navigate(const std::string& url) { call("POST", session_ + "/url", {{"url", url}}); }
    void refresh() { call("POST", session_ + "/refresh"); }
    json script(const std::string& js) {
        return call("POST", session_ + "/execute/sync", {{"script", js}, {"args", json::array()}});
    }
    /// Real key events (keyDown/keyUp per character) to whatever has the focus.
    void keys(const std::string& text) {
        json actions = json::array();
        for (char c : text) {
            const std::string k = c == '\n' ? std::string("\xee\x80\x87") : std::string(1, c);  // U+E007 Enter
            actions.push_back({{"type", "keyDown"}, {"value", k}});
            actions.push_back({{"type", "keyUp"}, {"value", k}});
        }
        call("POST", session_ + "/actions",
             {{"actions", json::array({{{"type", "key"}, {"id", "keyboard"}, {"actions", actions}}})}});
    }
    std::string screenshot_png() { return base64_decode(call("GET", session_ + "/screenshot").get<std::string>()); }

    /// Polls `js` (an expression) until it is true.
    bool wait_until(const std::string& js, double timeout_s = 30) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        while (std::chrono::steady_clock::now() < end) {
            if (script("return !!(" + js + ");").get<bool>()) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

private:
    httplib::Client cli_;
    std::string session_;
};

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

}  // namespace

TEST(ServeBrowser, MarkByKeysReloadAndSelect) {
    const std::string chromium = find_program("IPA_CHROMIUM", {"chromium", "chromium-browser", "google-chrome"});
    const std::string driver = find_program("IPA_CHROMEDRIVER", {"chromedriver"});
    if (chromium.empty() || driver.empty()) {
        GTEST_SKIP() << "chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver); "
                        "found chromium='"
                     << chromium << "' chromedriver='" << driver << "'";
    }
    ipa::test::TempDir tmp("browser");
    const std::string bin = std::string(IPA_CURATE_BIN) + " --log-level warn ";
    const fs::path syn = tmp.path / "syn", scores = tmp.path / "scores", sheets = tmp.path / "sheets";
    const fs::path manifest = syn / "candidates.csv", decisions = tmp.path / "decisions.csv";
    for (const std::string& cmd :
         {"synth --out " + q(syn) + " --clips 2 --candidates 3 --frames 9 --size 96x96 --seed 5",
          "score --manifest " + q(manifest) + " --out " + q(scores),
          "sheets --manifest " + q(manifest) + " --scores " + q(scores / "scores.json") + " --out " + q(sheets) +
              " --frames 4 --tile-height 96"}) {
        const auto [rc, out] = ipa::test::run_command(bin + cmd);
        ASSERT_EQ(rc, 0) << cmd << "\n" << out;
    }
    const auto m = ipa::curate::read_manifest(manifest);
    const int n = static_cast<int>(m.rows.size());
    ASSERT_EQ(n, 6);

    ipa::test::ChildProcess serve;
    ASSERT_TRUE(serve.start({IPA_CURATE_BIN, "--log-level", "warn", "serve", "--manifest", manifest.string(),
                             "--scores", (scores / "scores.json").string(), "--decisions", decisions.string(),
                             "--sheets", sheets.string(), "--reviewer", "browser-test"}));
    ASSERT_TRUE(serve.wait_for("Ctrl-C stops", 60)) << serve.output();
    const int serve_port = ipa::test::port_in_url(serve.output());
    ASSERT_GT(serve_port, 0) << serve.output();
    const std::string url = "http://127.0.0.1:" + std::to_string(serve_port) + "/";

    const int driver_port = ipa::test::free_port();
    ASSERT_GT(driver_port, 0);
    ipa::test::ChildProcess chromedriver;
    const fs::path driver_log = tmp.path / "chromedriver.log";
    ASSERT_TRUE(chromedriver.start({driver, "--port=" + std::to_string(driver_port)}, driver_log.string()));
    WebDriver wd(driver_port);
    ASSERT_TRUE(wd.wait_ready(60)) << ipa::read_file(driver_log);

    std::vector<std::string> marked;
    try {
        wd.open_session(chromium, tmp.path / "profile");
        wd.navigate(url);
        ASSERT_TRUE(wd.wait_until("document.body.dataset.ready === '1'"))
            << wd.script("return document.body.innerText;");
        const std::string progress = "document.getElementById('progress').textContent";
        EXPECT_EQ(wd.script("return " + progress + ";"), "0 of 6 decided");
        // The rows as shown (best score first); the viewer starts at the first undecided one.
        const auto order = wd.script(
            "return Array.prototype.map.call(document.getElementById('rows').rows, "
            "function (r) { return r.dataset.id; });");
        ASSERT_EQ(order.size(), 6u);
        EXPECT_EQ(wd.script("return document.getElementById('viewer').dataset.current;"), order[0]);
        EXPECT_EQ(wd.script("return document.getElementById('m-sheet').getAttribute('src');"),
                  "/media/" +
                      std::to_string(
                          std::find_if(m.rows.begin(), m.rows.end(), [&](const auto& r) { return r.id == order[0]; }) -
                          m.rows.begin()) +
                      "/sheet");

        auto press = [&](const std::string& keys, int decided) {
            wd.keys(keys);
            return wd.wait_until(progress + " === '" + std::to_string(decided) + " of 6 decided' && " +
                                 "document.body.dataset.busy === '0'");
        };
        ASSERT_TRUE(press("g", 1));  // first: good, the viewer moves on
        EXPECT_EQ(wd.script("return document.getElementById('viewer').dataset.current;"), order[1]);
        ASSERT_TRUE(press("b", 2));  // second: bad ...
        ASSERT_TRUE(press("u", 1));  // ... undone: back on the second
        EXPECT_EQ(wd.script("return document.getElementById('viewer').dataset.current;"), order[1]);
        wd.keys("n");  // a note for the next decision
        ASSERT_TRUE(wd.wait_until("document.activeElement.id === 'note'"));
        wd.keys("thumb <ok>\n");
        ASSERT_TRUE(wd.wait_until("document.getElementById('noteform').hidden"));
        ASSERT_TRUE(press("g", 2));
        ASSERT_TRUE(press("g", 3));
        for (int i = 0; i < 3; ++i) marked.push_back(order[i].get<std::string>());

        // Reload: the state comes back from the decisions log.
        wd.refresh();
        ASSERT_TRUE(wd.wait_until("document.body.dataset.ready === '1'"));
        EXPECT_EQ(wd.script("return " + progress + ";"), "3 of 6 decided");
        const auto shown = wd.script(
            "return Array.prototype.map.call(document.getElementById('rows').rows, "
            "function (r) { return [r.dataset.id, r.dataset.decision, "
            "r.querySelector('td.decision').textContent]; });");
        int good = 0;
        for (const auto& r : shown) {
            const bool is_marked = std::find(marked.begin(), marked.end(), r[0].get<std::string>()) != marked.end();
            EXPECT_EQ(r[1], is_marked ? "good" : "undecided") << r;
            good += r[1] == "good" ? 1 : 0;
            if (r[0] == marked[1]) {
                EXPECT_NE(r[2].get<std::string>().find("thumb <ok>"), std::string::npos) << r;
            }
        }
        EXPECT_EQ(good, 3);
        EXPECT_EQ(wd.script("return document.getElementById('viewer').dataset.current;"), order[3]);
        const std::string png = wd.screenshot_png();
        ASSERT_GT(png.size(), 8u);
        EXPECT_EQ(png.substr(1, 3), "PNG");
        const cv::Mat shot = cv::imdecode(std::vector<uchar>(png.begin(), png.end()), cv::IMREAD_COLOR);
        ASSERT_FALSE(shot.empty());
        EXPECT_GT(shot.cols, 600);
        if (const char* keep = std::getenv("IPA_SERVE_SCREENSHOT")) {
            ipa::write_file_atomic(keep, png);
        }
        // The filter of the static index still works on the served page.
        wd.script("var f = document.getElementById('filter'); f.value = 'good'; f.dispatchEvent(new Event('change'));");
        EXPECT_EQ(wd.script("return document.getElementById('shown').textContent;"), "3 of 6 shown");

        wd.close_session();
    } catch (const std::exception& e) {
        FAIL() << e.what() << "\nserve: " << serve.output() << "\nchromedriver: " << ipa::read_file(driver_log);
    }
    chromedriver.stop(SIGTERM);

    EXPECT_EQ(serve.stop(SIGTERM), 0) << serve.output();
    EXPECT_NE(serve.output().find("stopped; 3 of 6 candidates decided (3 good, 0 bad, 0 skip)"), std::string::npos)
        << serve.output();

    const auto log = rv::DecisionLog::read(decisions);
    ASSERT_EQ(log.records().size(), 5u);  // good, bad, undo, good (note), good
    EXPECT_EQ(log.records()[2].decision, rv::Decision::undo);
    EXPECT_EQ(log.records()[3].note, "thumb <ok>");
    EXPECT_EQ(log.records()[3].reviewer, "browser-test");

    const fs::path train = tmp.path / "train.csv";
    const auto [rc, out] = ipa::test::run_command(bin + "select --manifest " + q(manifest) + " --decisions " +
                                                  q(decisions) + " --out " + q(train));
    ASSERT_EQ(rc, 0) << out;
    std::vector<std::string> selected;
    for (const auto& r : ipa::curate::read_manifest(train).rows) selected.push_back(r.id);
    std::sort(selected.begin(), selected.end());
    std::sort(marked.begin(), marked.end());
    EXPECT_EQ(selected, marked);
}
