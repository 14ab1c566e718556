// Private to corrtrack_base: bfloat16 autocast on one device type for the life of the object
// (the state before is restored and autocast's cache of cast weights cleared at the end).
#pragma once

#include <torch/torch.h>

namespace corrtrack::detail {

class AutocastBf16 {
 public:
  explicit AutocastBf16(torch::Device device);
  ~AutocastBf16();
  AutocastBf16(const AutocastBf16&) = delete;
  AutocastBf16& operator=(const AutocastBf16&) = delete;

 private:
  torch::DeviceType m_type;
  bool m_was_on = false;
  at::ScalarType m_was_dtype = at::kBFloat16;
};

}  // namespace corrtrack::detail
