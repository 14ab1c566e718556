// What a CorrTrack checkpoint says about itself: the typed form of its JSON metadata, read and
// written in one place (checkpoint_info.cpp). Every reader of a checkpoint goes through it.
//
// Usage: CheckpointInfo info = checkpoint_info_read("run/last.ckpt");
//        if (info.encoder) ResNet net(*info.encoder);  // a feature encoder
//        checkpoint_save(path, module, info);           // writes the metadata back
#pragma once

#include "corrtrack/core.h"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace corrtrack {

// How an encoder expects its input: colour space and per-channel standardisation.
struct InputConvention {
  std::string colour;              // "rgb" | "lab" for video encoders; empty for image methods
  std::vector<double> mean, std;   // one value per channel, applied to [0, 1] (or Lab) values
  int size = 0;                    // image methods: side of the training views (0 = not recorded)
};

// Engine settings a model recommends for label propagation; unset fields keep the engine's
// defaults. `mode` is checked by the tracking module ("crw" | "mast").
struct PropagationHints {
  std::optional<int> context, topk, roi_gap;
  std::optional<double> radius, temperature, scale;
  std::optional<std::string> mode;
  std::optional<int> refine;            // edge refinement radius in frame pixels (0 = off)
  std::optional<double> refine_eps;
  std::optional<double> feedback_power;  // soft feedback sharpening (1 = as predicted)
  bool empty() const;
};

// An image method's cluster head (DeepCluster, SeLa, IIC): the saved child module and its classes.
struct ClusterHead {
  std::string module;
  int classes = 0;
};

struct CheckpointInfo {
  std::string method;                         // required: "mast", "crw", "simclr", "random", ...
  bool image_method = false;                  // written as "kind": "image"
  std::optional<ResNetConfig> encoder;        // a video feature encoder (trackers, baselines)
  std::string image_encoder_json;             // an image method's encoder config (owned by the learning module)
  std::string encoder_module;                 // child of the saved model holding the encoder ("" = the model)
  std::optional<InputConvention> input;
  int64_t step = 0;                           // training steps done
  std::string weights = "float32";            // "float16": exported half weights (loaded back as float32)
  std::optional<int64_t> exported_from_step;  // exported models: the step of the run they come from
  PropagationHints propagation;
  std::optional<ClusterHead> cluster_head;
  // Checksums of the saved weights: "" for the whole model and one per direct child module
  // (checkpoint_save fills them; checkpoint_load verifies the one of what it loads).
  std::map<std::string, std::string> digests;
  // Recorded for people, never read back by the code: the method's training settings ("train"),
  // the command, optimiser, schedule, seed, total steps, device.
  nlohmann::json record = nlohmann::json::object();
};

// JSON text <-> CheckpointInfo. `file` names the checkpoint in errors: a missing or malformed key
// throws Error("checkpoint 'F': key 'K' ...").
std::string checkpoint_info_to_json(const CheckpointInfo& info);
CheckpointInfo checkpoint_info_from_json(const std::string& text, const std::string& file);
// Recommended settings from JSON text such as {"scale":0.5}; `what` names the text in errors.
PropagationHints propagation_hints_from_json(const std::string& text, const std::string& what);
// The metadata of the checkpoint at `path`; throws Error naming the file (and key) on failure.
CheckpointInfo checkpoint_info_read(const std::string& path);
// Checksum (FNV-1a, hex) of a module's parameters and buffers: names, types, shapes and bytes.
std::string module_digest(torch::nn::Module& module);
// Saves `module` with `info` as its metadata (atomic), optionally with extra sub-archives; the
// weights' digests are computed here.
void checkpoint_save(const std::string& path, torch::nn::Module& module, const CheckpointInfo& info,
                     const std::vector<std::pair<std::string, torch::serialize::OutputArchive*>>& extras = {});

}  // namespace corrtrack
