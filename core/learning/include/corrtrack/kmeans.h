// k-means for the clustering methods (DeepCluster, PCL) and the NMI evaluation.
#pragma once

#include "corrtrack/core.h"

namespace corrtrack {

// k-means (Lloyd iterations, k-means++ seeding from `gen`) of points [N, D] -> centres [k, D].
// An empty cluster is re-seeded with the point farthest from its centre (DeepCluster's fix).
torch::Tensor kmeans(const torch::Tensor& points, int k, int iterations, torch::Generator& gen);
// The Lloyd iterations alone, from given initial centres [k, D] (empty clusters re-seeded).
torch::Tensor kmeans_lloyd(const torch::Tensor& points, torch::Tensor centres, int iterations);
// Index of the nearest centre for every point: [N, D], [k, D] -> [N] (long).
torch::Tensor kmeans_assign(const torch::Tensor& points, const torch::Tensor& centres);

}  // namespace corrtrack
