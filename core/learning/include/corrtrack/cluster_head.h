// The classifier of the clustering methods (DeepCluster, SeLa, IIC) and its loading for evaluation.
//
// Usage: ClusterClassifier head(encoder->dim(), k); auto logits = head(encoder(x));  // [B, k]
#pragma once

#include "corrtrack/core.h"

#include <functional>
#include <string>

namespace corrtrack {

// An MLP neck on the encoder's features f [B, in] -- Linear(in, 512), BatchNorm, ReLU,
// Linear(512, 128) -- then a linear layer to the clusters: logits [B, k] = fc(neck(f)).
//
// Why the neck: a linear classifier right on the evaluated features makes them the pseudo-label
// task's code, so they forget what the labels ignore. With the classifier on f itself, 300 steps
// of SeLa, DeepCluster or IIC left a ConvNet's kNN top-1 on Fashion-MNIST 1-7 points *below* the
// same encoder untrained; with the neck, 7-9 points above (README "Image methods"). DeepCluster
// and SeLa put their classifier after AlexNet's two fully connected layers and evaluate the
// convolutional features below them: the neck is the small-network form of that.
class ClusterClassifierImpl : public torch::nn::Module {
 public:
  static constexpr int kHidden = 512, kOut = 128;
  ClusterClassifierImpl(int in, int clusters);
  torch::Tensor neck(const torch::Tensor& f) { return m_neck->forward(f); }   // [B, in] -> [B, kOut]
  torch::Tensor forward(const torch::Tensor& f) { return fc(neck(f)); }        // [B, in] -> [B, k]
  torch::nn::Linear fc{nullptr};   // neck features -> cluster logits (DeepCluster resets it)
 private:
  torch::nn::Sequential m_neck;
};
TORCH_MODULE(ClusterClassifier);

// The cluster head saved as child `module` of `checkpoint`, for features of width `in`: features
// [B, in] -> logits [B, clusters], in eval mode. Checkpoints written before the neck existed hold a
// single linear layer there; they load as that.
std::function<torch::Tensor(const torch::Tensor&)> cluster_head_load(const std::string& checkpoint, const std::string& module,
                                                                     int in, int clusters, torch::Device device);

}  // namespace corrtrack
