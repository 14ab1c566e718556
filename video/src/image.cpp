// Image helpers that need only LibTorch: DAVIS palette, tensors, Lab colour, resize, overlays.
#include "corrtrack/core.h"
#include "corrtrack/video.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace corrtrack {

const std::array<uint8_t, 768>& davis_palette() {
  // PASCAL VOC colour map: the bits of the index are spread over the high bits of R, G and B.
  static const std::array<uint8_t, 768> palette = [] {
    std::array<uint8_t, 768> p{};
    for (int i = 0; i < 256; ++i) {
      int r = 0, g = 0, b = 0, c = i;
      for (int j = 0; j < 8; ++j) {
        r |= ((c >> 0) & 1) << (7 - j);
        g |= ((c >> 1) & 1) << (7 - j);
        b |= ((c >> 2) & 1) << (7 - j);
        c >>= 3;
      }
      p[i * 3 + 0] = static_cast<uint8_t>(r);
      p[i * 3 + 1] = static_cast<uint8_t>(g);
      p[i * 3 + 2] = static_cast<uint8_t>(b);
    }
    return p;
  }();
  return palette;
}

int mask_num_objects(const Image& mask) {
  int n = 0;
  for (uint8_t v : mask.data) if (v != 255 && v > n) n = v;
  return n;
}

Image mask_resize_nearest(const Image& mask, int width, int height) {
  if (mask.channels != 1) throw Error("mask resize needs a 1-channel mask");
  if (width < 1 || height < 1) throw Error("mask resize needs a positive size");
  Image out(width, height, 1);
  std::vector<int> sx(size_t(width), 0);
  for (int x = 0; x < width; ++x) sx[size_t(x)] = std::min(mask.width - 1, int((x + 0.5) * mask.width / width));
  for (int y = 0; y < height; ++y) {
    const int yy = std::min(mask.height - 1, int((y + 0.5) * mask.height / height));
    const uint8_t* row = mask.px(0, yy);
    uint8_t* dst = out.px(0, y);
    for (int x = 0; x < width; ++x) dst[x] = row[sx[size_t(x)]];
  }
  return out;
}

void mask_fill_polygon(Image& mask, const std::vector<std::pair<double, double>>& pts, uint8_t id) {
  if (mask.channels != 1) throw Error("polygon fill needs a 1-channel mask");
  if (pts.size() < 3) throw Error("a polygon needs at least 3 points, got " + std::to_string(pts.size()));
  std::vector<double> xs;
  for (int y = 0; y < mask.height; ++y) {
    const double cy = y + 0.5;
    xs.clear();
    for (size_t i = 0; i < pts.size(); ++i) {
      const auto& a = pts[i];
      const auto& b = pts[(i + 1) % pts.size()];
      // Half-open rule on y so that a vertex shared by two edges is counted once.
      if ((a.second <= cy && b.second > cy) || (b.second <= cy && a.second > cy)) {
        xs.push_back(a.first + (cy - a.second) * (b.first - a.first) / (b.second - a.second));
      }
    }
    std::sort(xs.begin(), xs.end());
    for (size_t i = 0; i + 1 < xs.size(); i += 2) {
      const int x0 = std::max(0, static_cast<int>(std::ceil(xs[i] - 0.5)));
      const int x1 = std::min(mask.width - 1, static_cast<int>(std::ceil(xs[i + 1] - 0.5)) - 1);  // centres on the right edge stay out
      for (int x = x0; x <= x1; ++x) mask.data[size_t(y) * mask.width + x] = id;
    }
  }
}

torch::Tensor image_to_tensor(const Image& img) {
  if (img.empty()) throw Error("image_to_tensor: empty image");
  auto t = torch::from_blob(const_cast<uint8_t*>(img.data.data()), {img.height, img.width, img.channels}, torch::kUInt8);
  return t.permute({2, 0, 1}).to(torch::kFloat).div_(255.0).contiguous();
}

Image tensor_to_image(const torch::Tensor& chw) {
  if (chw.dim() != 3) throw Error("tensor_to_image: expected [C, H, W]");
  auto t = chw.detach().to(torch::kCPU, torch::kFloat).mul(255.0).round_().clamp_(0, 255).to(torch::kUInt8)
               .permute({1, 2, 0}).contiguous();
  Image img(static_cast<int>(chw.size(2)), static_cast<int>(chw.size(1)), static_cast<int>(chw.size(0)));
  std::memcpy(img.data.data(), t.data_ptr<uint8_t>(), img.data.size());
  return img;
}

namespace {
// sRGB (D65) to XYZ, the matrix OpenCV and skimage use.
const double kRgbToXyz[3][3] = {{0.412453, 0.357580, 0.180423},
                                {0.212671, 0.715160, 0.072169},
                                {0.019334, 0.119193, 0.950227}};
const double kWhite[3] = {0.950456, 1.0, 1.088754};
constexpr double kLabEps = 0.008856;   // (6/29)^3
constexpr double kLabKappa = 7.787;    // (29/6)^2 / 3

torch::Tensor channel(const torch::Tensor& x, int c) { return x.select(-3, c); }
}  // namespace

torch::Tensor rgb_to_lab(const torch::Tensor& rgb) {
  auto lin = torch::where(rgb <= 0.04045, rgb / 12.92, torch::pow((rgb + 0.055) / 1.055, 2.4));
  std::vector<torch::Tensor> f(3);
  for (int i = 0; i < 3; ++i) {
    auto xyz = (channel(lin, 0) * kRgbToXyz[i][0] + channel(lin, 1) * kRgbToXyz[i][1] + channel(lin, 2) * kRgbToXyz[i][2]) / kWhite[i];
    f[i] = torch::where(xyz > kLabEps, torch::pow(xyz.clamp_min(1e-12), 1.0 / 3.0), kLabKappa * xyz + 16.0 / 116.0);
  }
  auto L = 116.0 * f[1] - 16.0;
  auto a = 500.0 * (f[0] - f[1]);
  auto b = 200.0 * (f[1] - f[2]);
  return torch::stack({L, a, b}, -3);
}

torch::Tensor lab_to_rgb(const torch::Tensor& lab) {
  auto fy = (channel(lab, 0) + 16.0) / 116.0;
  auto fx = fy + channel(lab, 1) / 500.0;
  auto fz = fy - channel(lab, 2) / 200.0;
  auto inv = [](const torch::Tensor& t) {
    auto t3 = t * t * t;
    return torch::where(t3 > kLabEps, t3, (t - 16.0 / 116.0) / kLabKappa);
  };
  auto X = inv(fx) * kWhite[0], Y = inv(fy) * kWhite[1], Z = inv(fz) * kWhite[2];
  // Inverse of kRgbToXyz.
  static const double m[3][3] = {{3.240479, -1.537150, -0.498535},
                                 {-0.969256, 1.875992, 0.041556},
                                 {0.055648, -0.204043, 1.057311}};
  std::vector<torch::Tensor> out(3);
  for (int i = 0; i < 3; ++i) {
    auto lin = (X * m[i][0] + Y * m[i][1] + Z * m[i][2]).clamp(0.0, 1.0);
    out[i] = torch::where(lin <= 0.0031308, lin * 12.92, 1.055 * torch::pow(lin, 1.0 / 2.4) - 0.055);
  }
  return torch::stack(out, -3).clamp(0.0, 1.0);
}

Image image_resize(const Image& img, int width, int height) {
  if (img.width == width && img.height == height) return img;
  auto t = image_to_tensor(img).unsqueeze(0);
  auto r = torch::nn::functional::interpolate(
      t, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{height, width})
             .mode(torch::kBilinear).align_corners(false));
  return tensor_to_image(r.squeeze(0));
}

Image overlay_render(const Image& frame, const Image& mask, OverlayMode mode, float alpha) {
  if (frame.width != mask.width || frame.height != mask.height) {
    throw Error("overlay: mask is " + std::to_string(mask.width) + "x" + std::to_string(mask.height) +
                " but frame is " + std::to_string(frame.width) + "x" + std::to_string(frame.height));
  }
  if (frame.channels != 3 || mask.channels != 1) throw Error("overlay: need an RGB frame and a 1-channel mask");
  alpha = std::clamp(alpha, 0.0f, 1.0f);
  const auto& pal = davis_palette();
  const int w = frame.width, h = frame.height;
  Image out = frame;
  auto label = [&](int x, int y) { return mask.data[size_t(y) * w + x]; };
  // A pixel is on a contour when a 4-neighbour (within a 2-pixel band) has another label.
  auto on_contour = [&](int x, int y) {
    const uint8_t v = label(x, y);
    if (v == 0) return false;
    for (int d = 1; d <= 2; ++d) {
      if (x - d < 0 || label(x - d, y) != v) return true;
      if (x + d >= w || label(x + d, y) != v) return true;
      if (y - d < 0 || label(x, y - d) != v) return true;
      if (y + d >= h || label(x, y + d) != v) return true;
    }
    return false;
  };
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const uint8_t v = label(x, y);
      uint8_t* p = out.px(x, y);
      const uint8_t* c = &pal[size_t(v) * 3];
      switch (mode) {
        case OverlayMode::Blend:
          if (v != 0) for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::lround((1 - alpha) * p[k] + alpha * c[k]));
          break;
        case OverlayMode::Contour:
          if (on_contour(x, y)) for (int k = 0; k < 3; ++k) p[k] = c[k];
          break;
        case OverlayMode::FadeBackground:
          if (v == 0) {
            for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::lround(p[k] * (1 - alpha) * 0.6));
          } else if (on_contour(x, y)) {
            for (int k = 0; k < 3; ++k) p[k] = c[k];
          }
          break;
        case OverlayMode::MaskOnly:
          for (int k = 0; k < 3; ++k) p[k] = c[k];
          break;
      }
    }
  }
  return out;
}

}  // namespace corrtrack
