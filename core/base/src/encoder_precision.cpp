// The bfloat16 scope of the encoders (encoder_precision.h) and the autocast switch it drives.
#include "corrtrack/encoder_precision.h"
#include "encoder_autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace corrtrack {

namespace {
thread_local bool t_bf16 = false;
}  // namespace

EncoderBf16Scope::EncoderBf16Scope(bool on) : m_previous(t_bf16) { t_bf16 = on; }
EncoderBf16Scope::~EncoderBf16Scope() { t_bf16 = m_previous; }
bool EncoderBf16Scope::active() { return t_bf16; }

namespace detail {

// LibTorch 2.4 made autocast's switches per device type; 1.13 (Debian's) has one per backend.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
AutocastBf16::AutocastBf16(torch::Device device) : m_type(device.type()) {
  m_was_on = at::autocast::is_autocast_enabled(m_type);
  m_was_dtype = at::autocast::get_autocast_dtype(m_type);
  at::autocast::set_autocast_dtype(m_type, at::kBFloat16);
  at::autocast::set_autocast_enabled(m_type, true);
}
AutocastBf16::~AutocastBf16() {
  at::autocast::set_autocast_enabled(m_type, m_was_on);
  at::autocast::set_autocast_dtype(m_type, m_was_dtype);
  at::autocast::clear_cache();
}
#else
AutocastBf16::AutocastBf16(torch::Device device) : m_type(device.type()) {
  const bool cuda = m_type == torch::kCUDA;
  m_was_on = cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
  m_was_dtype = cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
  if (cuda) {
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
}
AutocastBf16::~AutocastBf16() {
  if (m_type == torch::kCUDA) {
    at::autocast::set_enabled(m_was_on);
    at::autocast::set_autocast_gpu_dtype(m_was_dtype);
  } else {
    at::autocast::set_cpu_enabled(m_was_on);
    at::autocast::set_autocast_cpu_dtype(m_was_dtype);
  }
  at::autocast::clear_cache();   // the weights' cast copies: the optimiser changes the weights next
}
#endif

}  // namespace detail
}  // namespace corrtrack
