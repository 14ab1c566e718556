// Reading the feature encoder out of a checkpoint file and writing it alone as a model file
// (shared by features.cpp's export and encoder_average.cpp).
#pragma once

#include "corrtrack/checkpoint_info.h"
#include "corrtrack/core.h"

namespace corrtrack::detail {

// The encoder of `checkpoint` (training checkpoint or exported model) as described by `info`,
// float32 whatever the file stores; throws Error naming the file when it holds none.
ResNet encoder_load(const std::string& checkpoint, const CheckpointInfo& info);

// Writes `net` alone as a model file (atomic): `info` without optimiser state or encoder_module,
// exported_from_step = info.step, weights cast to float16 when `half` (`net` is cast in place),
// `hints` (when not empty) as the recommended engine settings.
void encoder_save(const std::string& out, ResNet& net, CheckpointInfo info, bool half, const PropagationHints& hints);

}  // namespace corrtrack::detail
