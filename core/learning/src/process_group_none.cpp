// dist_connect in a build without c10d Gloo (LibTorch without distributed support, or the Gloo
// headers missing at configure time): one process only.
#include "corrtrack/distributed.h"

namespace corrtrack {

bool dist_available() { return false; }

std::shared_ptr<Distributed> dist_connect(const DistConfig& c) {
  dist_config_validate(c);
  if (c.world_size == 1) return dist_single();
  throw Error("this build cannot train across processes: LibTorch's c10d with Gloo was not found when it was configured "
              "(Debian: install libgloo-dev and rebuild)");
}

}  // namespace corrtrack
