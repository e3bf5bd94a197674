#include <gtest/gtest.h>

#include "ipa/core/config.h"
#include "ipa/core/error.h"

namespace {

using ipa::ConfigError;
using ipa::ConfigReader;

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "<no ConfigError>";
}

const char* kRun = R"(
optim:
  lr: 1.0e-4
  betas: [0.9, 0.999]
  schedule: cosine
train:
  steps: 1000
  grad_checkpointing: true
data:
  size: [480, 832]
)";

TEST(ConfigReader, ReadsTypedValuesAndDefaults) {
    auto cfg = ConfigReader::load_string(kRun, "run.yaml");
    auto optim = cfg.section("optim");
    EXPECT_DOUBLE_EQ(optim.get<double>("lr"), 1e-4);
    EXPECT_EQ(optim.get<std::vector<double>>("betas"), (std::vector<double>{0.9, 0.999}));
    EXPECT_EQ(optim.get<std::string>("schedule"), "cosine");
    EXPECT_DOUBLE_EQ(optim.get_or<double>("weight_decay", 0.01), 0.01);
    auto train = cfg.section("train");
    EXPECT_EQ(train.get<int64_t>("steps"), 1000);
    EXPECT_TRUE(train.get<bool>("grad_checkpointing"));
    EXPECT_EQ(cfg.section("data").get<std::vector<int64_t>>("size"), (std::vector<int64_t>{480, 832}));
    EXPECT_NO_THROW(optim.finish());
}

TEST(ConfigReader, UnknownKeyNamesFullPathAndKnownKeys) {
    auto cfg = ConfigReader::load_string("optim:\n  lr: 1\n  lrr: 2\n", "run.yaml");
    auto optim = cfg.section("optim");
    optim.get<double>("lr");
    const auto msg = error_of([&] { optim.finish(); });
    EXPECT_NE(msg.find("optim.lrr"), std::string::npos) << msg;
    EXPECT_NE(msg.find("run.yaml"), std::string::npos) << msg;
    EXPECT_NE(msg.find("lr"), std::string::npos) << msg;
}

TEST(ConfigReader, WrongTypeNamesPathLineAndValue) {
    auto cfg = ConfigReader::load_string("train:\n  steps: many\n", "run.yaml");
    const auto msg = error_of([&] { cfg.section("train").get<int64_t>("steps"); });
    EXPECT_NE(msg.find("'train.steps'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("run.yaml:2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'many'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("integer"), std::string::npos) << msg;
}

TEST(ConfigReader, ListElementErrorsNameTheIndex) {
    auto cfg = ConfigReader::load_string("data:\n  size: [480, wide]\n", "run.yaml");
    const auto msg = error_of([&] { cfg.section("data").get<std::vector<int64_t>>("size"); });
    EXPECT_NE(msg.find("data.size[1]"), std::string::npos) << msg;
}

TEST(ConfigReader, MissingRequiredKeyAndBadSection) {
    auto cfg = ConfigReader::load_string("model: 3\n", "run.yaml");
    EXPECT_NE(error_of([&] { cfg.get<std::string>("name"); }).find("'name' is required"), std::string::npos);
    EXPECT_NE(error_of([&] { cfg.section("model"); }).find("expected a mapping"), std::string::npos);
}

TEST(ConfigReader, FloatIsNotAnInteger) {
    auto cfg = ConfigReader::load_string("steps: 1.5\n");
    EXPECT_THROW(cfg.get<int64_t>("steps"), ConfigError);
    EXPECT_THROW(cfg.get<bool>("steps"), ConfigError);
}

TEST(ConfigReader, BadFileAndBadYaml) {
    EXPECT_NE(error_of([] { ConfigReader::load_file("/nonexistent/run.yaml"); }).find("/nonexistent/run.yaml"),
              std::string::npos);
    EXPECT_NE(error_of([] { ConfigReader::load_string("a: [1, 2", "x.yaml"); }).find("x.yaml"), std::string::npos);
}

TEST(ApplyOverride, SetsNestedValuesParsedAsYaml) {
    YAML::Node root = YAML::Load(kRun);
    ipa::apply_override(root, "optim.lr=5e-5");
    ipa::apply_override(root, "data.size=[240, 416]");
    ipa::apply_override(root, "checkpoint.dir=runs/x");
    ConfigReader cfg(root, "", "run.yaml");
    EXPECT_DOUBLE_EQ(cfg.section("optim").get<double>("lr"), 5e-5);
    EXPECT_EQ(cfg.section("data").get<std::vector<int64_t>>("size"), (std::vector<int64_t>{240, 416}));
    EXPECT_EQ(cfg.section("checkpoint").get<std::string>("dir"), "runs/x");
}

TEST(ApplyOverride, RejectsMalformedAssignments) {
    YAML::Node root = YAML::Load(kRun);
    EXPECT_THROW(ipa::apply_override(root, "optim.lr"), ConfigError);
    EXPECT_THROW(ipa::apply_override(root, "=3"), ConfigError);
    EXPECT_THROW(ipa::apply_override(root, "optim..lr=3"), ConfigError);
    const auto msg = error_of([&] { ipa::apply_override(root, "train.steps.x=3"); });
    EXPECT_NE(msg.find("'steps' is not a section"), std::string::npos) << msg;
}

TEST(ApplyOverride, RoundTripsThroughYamlText) {
    YAML::Node root = YAML::Load(kRun);
    ipa::apply_override(root, "loss.beta=600");
    const auto text = ipa::to_yaml_string(root);
    auto again = ConfigReader::load_string(text);
    EXPECT_EQ(again.section("loss").get<int64_t>("beta"), 600);
    EXPECT_EQ(again.section("train").get<int64_t>("steps"), 1000);
}

}  // namespace
