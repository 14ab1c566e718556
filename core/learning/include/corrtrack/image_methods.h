// Image self-supervised methods on the contrastive core (simclr, moco, byol, swav, npid, sela,
// deepcluster, iic, pcl, supcon, cpc) as TrainableMethods. Their encoders, augmentation and
// evaluation have headers of their own, included here.
//
// Usage: auto m = image_method_create(cfg, images, labels); train_run(*m, opt, schedule, options);
#pragma once

#include "corrtrack/image_augment.h"
#include "corrtrack/image_encoder.h"
#include "corrtrack/image_eval.h"
#include "corrtrack/train.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace corrtrack {

struct ImageMethodConfig {
  std::string method = "simclr";
  ImageEncoderConfig encoder;
  int batch = 256;
  AugmentConfig augment;
  double temperature = 0.0;   // 0: the method's default, image_method_default_temperature()
  int proj_dim = 128;
  int queue = 4096;           // moco/pcl keys; npid noise samples
  double momentum = 0.99;     // moco/pcl key encoder EMA; byol's base (rising to 1 on a cosine; BYOL used 0.996)
  // moco/pcl: MoCo's shuffling BN on one device. The key batch is permuted and encoded in this many
  // groups, each normalised with its own BatchNorm statistics, then put back in order, so that a
  // query and its key never share batch statistics (through them the model could tell its positive
  // among the keys; MoCo shuffles keys across GPUs for this). 1: one group, as before.
  int key_bn_groups = 1;
  int clusters = 0;           // 0: method default (swav 30 prototypes, sela/deepcluster/pcl 30, iic 10)
  int64_t total_steps = 1;
  uint64_t seed = 0;
};

std::vector<std::string> image_method_names();
// The softmax temperature a method uses when ImageMethodConfig::temperature is 0 (its paper's):
// simclr 0.5, moco and pcl 0.2, npid 0.07, swav and supcon 0.1; 0 for methods without one.
double image_method_default_temperature(const std::string& method);
// f applied to x [B, ...] in `groups` random groups of rows (a permutation drawn from gen, cut
// into `groups` near-equal chunks), the results [B, ...] put back in x's row order. Groups are
// capped at B / 2 so that each holds at least 2 rows (what BatchNorm needs); groups <= 1 is f(x).
// MoCo's key encoder runs this way so that every group has BatchNorm statistics of its own.
torch::Tensor apply_in_shuffled_groups(const torch::Tensor& x, int64_t groups, torch::Generator& gen,
                                       const std::function<torch::Tensor(const torch::Tensor&)>& f);
// images uint8 [N, C, H, W]; labels [N] (used by supcon only). Throws Error for an unknown method.
std::unique_ptr<TrainableMethod> image_method_create(const ImageMethodConfig& cfg, torch::Tensor images, torch::Tensor labels);

}  // namespace corrtrack
