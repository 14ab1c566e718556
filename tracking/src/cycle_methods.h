// Internal: the cycle-consistency methods (CRW, TimeCycle), built by video_method_create.
#pragma once

#include "corrtrack/video_methods.h"

namespace corrtrack {

// crw or timecycle; nullptr for another method name.
std::unique_ptr<TrainableMethod> make_cycle_method(const VideoMethodConfig& cfg, std::shared_ptr<const ClipStore> cache);

}  // namespace corrtrack
