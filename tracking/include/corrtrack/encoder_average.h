// Weight averaging of feature encoders: one model whose weights are the mean of several
// checkpoints of the same encoder ("model soup", Wortsman et al. 2022; stochastic weight
// averaging, Izmailov et al. 2018). Checkpoints of one fine-tune, or of fine-tunes from one
// start, lie in one basin of the loss; in the literature their mean is often better than any of
// them, smoothing the checkpoint-to-checkpoint noise a single pick inherits. Not for the bundled
// model on DAVIS-2016 val-dev: the mean of a 2500-step fine-tune's checkpoints scored 72.16 J&F
// against 72.12-72.47 for its members (README, "CPU fine-tune").
//
//   w_avg = (1/n) · Σ_i w_i     for every parameter and every floating-point buffer
//
// Batch norm's running mean and variance are averaged like the weights. That is exact for runs
// that kept them frozen (train --freeze-bn: every checkpoint holds the same statistics) and an
// approximation otherwise (the statistics of the averaged weights are not the average statistics;
// SWA re-estimates them with a pass over data). Integer buffers (num_batches_tracked) are the
// first checkpoint's.
//
// Usage (corrtrack export --checkpoint A --average B C --out soup.ckpt):
//   feature_encoder_average({"run/checkpoints/step-1000.ckpt", "run/last.ckpt"}, "soup.ckpt", true);
#pragma once

#include "corrtrack/checkpoint_info.h"

#include <string>
#include <vector>

namespace corrtrack {

// Writes the mean of the encoders of `checkpoints` (training checkpoints or exported models, at
// least one) to `out` like feature_encoder_export: the first checkpoint's metadata (method,
// input, recommended settings unless `hints` is given), float16 when `half`, and the averaged
// files with their steps under record["average"]. Throws Error naming the file that is not a
// feature encoder or differs from the first in method, input convention or any weight's name or
// shape.
void feature_encoder_average(const std::vector<std::string>& checkpoints, const std::string& out, bool half,
                             const PropagationHints& hints = {});

}  // namespace corrtrack
