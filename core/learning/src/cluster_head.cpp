// The clustering methods' classifier: MLP neck and linear layer; loading it for evaluation.
#include "corrtrack/cluster_head.h"

namespace nn = torch::nn;

namespace corrtrack {

ClusterClassifierImpl::ClusterClassifierImpl(int in, int clusters) {
  if (in < 1 || clusters < 2) throw Error("cluster head: needs features of width >= 1 and at least 2 clusters");
  nn::Sequential neck;
  neck->push_back(nn::Linear(in, kHidden));
  neck->push_back(SyncBatchNorm1d(kHidden));
  neck->push_back(nn::ReLU());
  neck->push_back(nn::Linear(kHidden, kOut));
  m_neck = register_module("neck", neck);
  fc = register_module("fc", nn::Linear(kOut, clusters));
}

std::function<torch::Tensor(const torch::Tensor&)> cluster_head_load(const std::string& checkpoint, const std::string& module,
                                                                     int in, int clusters, torch::Device device) {
  ClusterClassifier head(in, clusters);
  try {
    checkpoint_load(checkpoint, *head, module);
  } catch (const Error& current_form) {
    nn::Linear linear(in, clusters);   // the form before the neck
    try {
      checkpoint_load(checkpoint, *linear, module);
    } catch (const Error&) {
      throw current_form;
    }
    linear->to(device);
    return [linear](const torch::Tensor& f) mutable { return linear(f); };
  }
  head->to(device);
  head->eval();
  return [head](const torch::Tensor& f) mutable { return head(f); };
}

}  // namespace corrtrack
