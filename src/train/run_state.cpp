#include "run_state.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/io/safetensors.h"
#include "ipa/lora/lora.h"
#include "ipa/train/trainer.h"

namespace ipa::train {
namespace fs = std::filesystem;

namespace {

std::string step_name(int64_t step) { return fmt::format("step-{:06d}", step); }

bool is_complete(const fs::path& d) {
    std::error_code ec;
    return fs::is_regular_file(d / "trainer_state.json", ec) && fs::is_regular_file(d / "adapter.safetensors", ec);
}

}  // namespace

fs::path find_latest_checkpoint(const fs::path& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return {};
    const auto latest = dir / "latest";
    if (fs::is_symlink(latest, ec)) {
        const auto target = dir / fs::read_symlink(latest, ec);
        if (!ec && is_complete(target)) return target;
    }
    fs::path best;
    for (const auto& e : fs::directory_iterator(dir)) {
        const auto name = e.path().filename().string();
        if (name.rfind("step-", 0) != 0 || name.find(".tmp") != std::string::npos || !is_complete(e.path())) continue;
        if (best.empty() || name > best.filename().string()) best = e.path();
    }
    return best;
}

namespace detail {

void save_checkpoint(const fs::path& dir, const RunState& state, torch::nn::Module& model, const TrainConfig& config,
                     torch::optim::AdamW& optimizer, int64_t keep) {
    fs::create_directories(dir);
    const auto final_dir = dir / step_name(state.step);
    const auto tmp = dir / fmt::format("{}.tmp-{}", step_name(state.step), ::getpid());
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    try {
        lora::save_adapter(tmp / "adapter.safetensors", model, config.lora,
                           {{"step", std::to_string(state.step)}, {"loss", loss::to_string(config.loss.kind)}});
        torch::save(optimizer, (tmp / "optimizer.pt").string());
        nlohmann::json j{
            {"step", state.step},           {"epoch", state.epoch},           {"position", state.position},
            {"bad_steps", state.bad_steps}, {"world_size", state.world_size}, {"format", "ipa-train-state-v2"}};
        write_file_atomic(tmp / "config.yaml", config.to_yaml());
        write_file_atomic(tmp / "trainer_state.json", j.dump(2) + "\n");  // last: marks completeness
        fs::remove_all(final_dir);
        fs::rename(tmp, final_dir);
    } catch (...) {
        std::error_code ec;
        fs::remove_all(tmp, ec);
        throw;
    }
    // Point `latest` at it (a symlink replaced atomically).
    const auto link_tmp = dir / fmt::format("latest.tmp-{}", ::getpid());
    std::error_code ec;
    fs::remove(link_tmp, ec);
    fs::create_directory_symlink(final_dir.filename(), link_tmp);
    fs::rename(link_tmp, dir / "latest");
    // Keep the newest `keep` checkpoints.
    std::vector<fs::path> steps;
    for (const auto& e : fs::directory_iterator(dir)) {
        const auto name = e.path().filename().string();
        if (name.rfind("step-", 0) == 0 && name.find(".tmp") == std::string::npos && e.is_directory()) {
            steps.push_back(e.path());
        }
    }
    std::sort(steps.begin(), steps.end());
    for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < steps.size(); ++i) fs::remove_all(steps[i], ec);
    spdlog::info("checkpoint {} written", final_dir.string());
}

RunState load_checkpoint(const fs::path& step_dir, torch::nn::Module& model, torch::optim::AdamW& optimizer) {
    RunState s;
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_file(step_dir / "trainer_state.json"));
        s.step = j.at("step").get<int64_t>();
        s.epoch = j.at("epoch").get<int64_t>();
        s.position = j.at("position").get<int64_t>();
        s.bad_steps = j.at("bad_steps").get<int64_t>();
        s.world_size = j.value("world_size", int64_t{1});
    } catch (const std::exception& e) {
        throw CheckpointError(
            fmt::format("checkpoint '{}' has a bad trainer_state.json: {}", step_dir.string(), e.what()));
    }
    lora::load_adapter(model, step_dir / "adapter.safetensors", /*strict=*/true);
    try {
        torch::load(optimizer, (step_dir / "optimizer.pt").string());
    } catch (const c10::Error& e) {
        throw CheckpointError(fmt::format("checkpoint '{}': cannot read optimizer.pt: {}", step_dir.string(),
                                          e.what_without_backtrace()));
    }
    return s;
}

void truncate_metrics(const fs::path& metrics, int64_t step) {
    std::error_code ec;
    if (!fs::exists(metrics, ec)) return;
    std::istringstream in(read_file(metrics));
    std::string kept;
    for (std::string line; std::getline(in, line);) {
        try {
            const auto j = nlohmann::json::parse(line);
            if (j.value("step", int64_t{0}) > step) continue;
        } catch (const nlohmann::json::exception&) {
            continue;  // a torn last line from a crash
        }
        kept += line + "\n";
    }
    write_file_atomic(metrics, kept);
}

}  // namespace detail
}  // namespace ipa::train
