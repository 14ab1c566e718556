// Mixed-precision training of the encoders: bfloat16 arithmetic where it pays, float32 elsewhere.
//
// While an EncoderBf16Scope that is on lives on a thread, every ResNet encoder's forward
// (ResNetImpl::forward) on that thread runs under LibTorch's bfloat16 autocast — convolutions in
// bf16 (AMX / AVX512-BF16 on recent x86 CPUs, tensor cores on CUDA), batch norm on bf16
// activations with its float32 parameters and running statistics — and returns float32. Heads, affinities, losses, gradients of the loss with respect to
// the features and the optimiser stay in float32; the weights stay float32 (autocast casts them per
// call and the cast copies are dropped after each forward, so an optimiser step is never missed).
//
// Usage (the training loop, `train --precision bf16`):
//   EncoderBf16Scope bf16(options.bf16);   // for the step's forward; backward follows the same casts
//   StepOutput out = method.step(step, gen);
#pragma once

namespace corrtrack {

class EncoderBf16Scope {
 public:
  explicit EncoderBf16Scope(bool on);
  ~EncoderBf16Scope();
  EncoderBf16Scope(const EncoderBf16Scope&) = delete;
  EncoderBf16Scope& operator=(const EncoderBf16Scope&) = delete;
  // True while a scope that is on lives on this thread.
  static bool active();

 private:
  bool m_previous;
};

}  // namespace corrtrack
