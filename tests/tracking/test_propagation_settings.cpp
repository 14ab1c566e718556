// Where propagation settings come from: presets, a model's recommended settings and the user's
// explicit ones, in that precedence (the rule the command and the Studio share).
#include "corrtrack/propagation_settings.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace corrtrack;

namespace {
PropagationHints recommends_scale_and_context() {
  PropagationHints h;
  h.scale = 0.5;
  h.context = 8;
  h.mode = "mast";
  return h;
}
}  // namespace

// Property: without a model, a preset or given options the result is the engine's defaults
// (CRW's protocol), whatever the user struct holds in settings not given.
TEST(PropagationSettings, DefaultsWhenNothingIsGiven) {
  PropagationConfig user;
  user.topk = 99;
  user.tile = 4;
  const auto c = propagation_config_resolve(user, {}, {});
  EXPECT_EQ(c.topk, 10);
  EXPECT_EQ(c.context, 20);
  EXPECT_EQ(c.tile, 4) << "tile is no setting: it always comes from the user";
  EXPECT_EQ(c.mode, PropagationMode::Crw);
}

// Property: every setting a model recommends is applied (all ten keys, not a subset).
TEST(PropagationSettings, ModelRecommendationFillsEveryKey) {
  PropagationHints h{4, 3, 9, 6.0, 0.1, 0.25, std::string("mast"), 12, 3e-4, 1.5};
  const auto c = propagation_config_resolve(PropagationConfig(), {}, h);
  EXPECT_EQ(c.context, 4);
  EXPECT_EQ(c.topk, 3);
  EXPECT_EQ(c.roi_gap, 9);
  EXPECT_EQ(c.radius, 6.0);
  EXPECT_EQ(c.temperature, 0.1);
  EXPECT_EQ(c.scale, 0.25);
  EXPECT_EQ(c.mode, PropagationMode::Mast);
  EXPECT_EQ(c.refine_radius, 12);
  EXPECT_EQ(c.refine_eps, 3e-4);
  EXPECT_EQ(c.feedback_power, 1.5);
}

// Property: model < preset < given. The TimeCycle preset overrides the model's context and mode
// but not its scale; an explicitly given context wins over both.
TEST(PropagationSettings, Precedence) {
  auto c = propagation_config_resolve(PropagationConfig(), {}, recommends_scale_and_context(), PropagationProtocol::TimeCycle);
  EXPECT_EQ(c.context, 8);
  EXPECT_EQ(c.topk, 5);
  EXPECT_EQ(c.mode, PropagationMode::Crw);
  EXPECT_EQ(c.scale, 0.5);
  PropagationConfig user;
  user.context = 3;
  user.scale = 1.0;
  c = propagation_config_resolve(user, {PropagationSetting::Context}, recommends_scale_and_context(), PropagationProtocol::TimeCycle);
  EXPECT_EQ(c.context, 3);
  EXPECT_EQ(c.scale, 0.5) << "scale was not given: the model's recommendation stands";
  c = propagation_config_resolve(PropagationConfig(), {}, recommends_scale_and_context(), PropagationProtocol::Mast);
  EXPECT_EQ(c.mode, PropagationMode::Mast);
  EXPECT_EQ(c.context, 8);
}

// Property: the fast preset is CRW's protocol with radius 8 over the model's settings, and a given
// radius still wins over it.
TEST(PropagationSettings, FastPresetIsCrwWithRadius8) {
  auto c = propagation_config_resolve(PropagationConfig(), {}, recommends_scale_and_context(), PropagationProtocol::Fast);
  EXPECT_EQ(c.radius, 8.0);
  EXPECT_EQ(c.context, 20) << "CRW's context replaces the model's 8";
  EXPECT_EQ(c.topk, 10);
  EXPECT_EQ(c.mode, PropagationMode::Crw);
  EXPECT_EQ(c.scale, 0.5) << "the model's resolution stands";
  EXPECT_EQ(propagation_config_resolve(PropagationConfig(), {}, {}, PropagationProtocol::Crw).radius, 12.0);
  PropagationConfig user;
  user.radius = 16.0;
  c = propagation_config_resolve(user, {PropagationSetting::Radius}, {}, PropagationProtocol::Fast);
  EXPECT_EQ(c.radius, 16.0);
  EXPECT_EQ(propagation_protocol_parse("fast"), PropagationProtocol::Fast);
}

// Property: the quality preset is CRW's protocol with 80 recent frames and radius 16 over the
// model's settings (its resolution stands), and given options still win over it.
TEST(PropagationSettings, QualityPresetIsCrwWithLongContextAndWideRadius) {
  auto c = propagation_config_resolve(PropagationConfig(), {}, recommends_scale_and_context(), PropagationProtocol::Quality);
  EXPECT_EQ(c.context, 80);
  EXPECT_EQ(c.radius, 16.0);
  EXPECT_EQ(c.topk, 10);
  EXPECT_EQ(c.temperature, PropagationConfig().temperature);
  EXPECT_EQ(c.mode, PropagationMode::Crw);
  EXPECT_EQ(c.scale, 0.5) << "the model's resolution stands";
  PropagationConfig user;
  user.context = 30;
  c = propagation_config_resolve(user, {PropagationSetting::Context}, {}, PropagationProtocol::Quality);
  EXPECT_EQ(c.context, 30);
  EXPECT_EQ(c.radius, 16.0);
  EXPECT_EQ(propagation_protocol_parse("quality"), PropagationProtocol::Quality);
}

// Property: names parse to their values and unknown ones are refused by name.
TEST(PropagationSettings, ParseNames) {
  EXPECT_EQ(propagation_protocol_parse("timecycle"), PropagationProtocol::TimeCycle);
  EXPECT_EQ(propagation_mode_parse("mast"), PropagationMode::Mast);
  EXPECT_EQ(propagation_mode_name(PropagationMode::Mast), "mast");
  try {
    propagation_protocol_parse("stm");
    FAIL() << "stm accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'stm'"), std::string::npos);
  }
  PropagationHints bad;
  bad.mode = "xmem";
  EXPECT_THROW(propagation_config_resolve(PropagationConfig(), {}, bad), Error);
}

// Property: validation names the setting, not a command-line flag.
TEST(PropagationSettings, ValidationNamesTheSetting) {
  PropagationConfig c;
  c.topk = 0;
  try {
    propagation_config_validate(c);
    FAIL() << "top-k 0 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("top-k must be >= 1", 0), 0u) << e.what();
    EXPECT_EQ(std::string(e.what()).find("--"), std::string::npos) << "no command-line flag: " << e.what();
  }
}

// Property: the edge refinement a model recommends stays under every preset (presets set the
// memory's settings only), and a given --refine 0 turns it off.
TEST(PropagationSettings, ModelsRefinementStandsUnderPresetsGivenWins) {
  PropagationHints h;
  h.refine = 12;
  h.refine_eps = 3e-4;
  for (auto p : {PropagationProtocol::Crw, PropagationProtocol::Fast, PropagationProtocol::Quality,
                 PropagationProtocol::TimeCycle, PropagationProtocol::Mast}) {
    const auto c = propagation_config_resolve(PropagationConfig(), {}, h, p);
    EXPECT_EQ(c.refine_radius, 12);
    EXPECT_EQ(c.refine_eps, 3e-4);
  }
  EXPECT_EQ(propagation_config_resolve(PropagationConfig(), {}, {}).refine_radius, 0) << "off unless recommended or given";
  PropagationConfig user;
  user.refine_radius = 0;
  const auto c = propagation_config_resolve(user, {PropagationSetting::Refine}, h, PropagationProtocol::Quality);
  EXPECT_EQ(c.refine_radius, 0);
  EXPECT_EQ(c.refine_eps, 3e-4) << "eps was not given: the model's stands";
}

// Property: the feedback sharpening a model recommends stays under every preset, as its
// refinement does; a given --feedback-power 1 restores the soft labels; out-of-range powers are
// refused by name.
TEST(PropagationSettings, ModelsFeedbackPowerStandsUnderPresetsGivenWins) {
  PropagationHints h;
  h.feedback_power = 1.5;
  for (auto p : {PropagationProtocol::Crw, PropagationProtocol::Fast, PropagationProtocol::Quality,
                 PropagationProtocol::TimeCycle, PropagationProtocol::Mast}) {
    EXPECT_EQ(propagation_config_resolve(PropagationConfig(), {}, h, p).feedback_power, 1.5);
  }
  EXPECT_EQ(propagation_config_resolve(PropagationConfig(), {}, {}).feedback_power, 1.0) << "as predicted unless recommended";
  PropagationConfig user;
  user.feedback_power = 1.0;
  EXPECT_EQ(propagation_config_resolve(user, {PropagationSetting::FeedbackPower}, h).feedback_power, 1.0);
  for (double bad : {0.0, -1.0, 16.5, std::nan("")}) {
    PropagationConfig c;
    c.feedback_power = bad;
    try {
      propagation_config_validate(c);
      FAIL() << "feedback power " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("feedback power must be in (0, 16]", 0), 0u) << e.what();
    }
  }
  PropagationConfig ok;
  ok.feedback_power = 16.0;
  EXPECT_NO_THROW(propagation_config_validate(ok));
}
