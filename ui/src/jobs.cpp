// Worker-thread jobs of the Studio: propagation over a frame range, feature maps; and the
// similarity, best-match, heat-map and PCA helpers the inspection view uses.
#include "corrtrack/ui/jobs.h"

#include <QFileInfo>

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace F = torch::nn::functional;

namespace corrtrack::ui {

QString describeCheckpoint(const QString& path) {
  const CheckpointInfo info = checkpoint_info_read(path.toStdString());
  QString s = QString::fromStdString(info.method);
  if (info.encoder) {
    s += QString(" · ResNet-%1").arg(info.encoder->depth);
    if (info.encoder->head_channels > 0) s += QString(" → %1-d").arg(info.encoder->head_channels);
  }
  if (info.step > 0) s += QString(" · step %1").arg(info.step);
  if (info.exported_from_step) s += QString(" · exported from step %1").arg(*info.exported_from_step);
  s += " · " + QString::fromStdString(info.weights);
  const auto& h = info.propagation;
  QStringList rec;
  if (h.mode) rec << QString("mode %1").arg(QString::fromStdString(*h.mode));
  if (h.scale) rec << QString("scale %1").arg(*h.scale);
  if (h.context) rec << QString("context %1").arg(*h.context);
  if (h.topk) rec << QString("top-k %1").arg(*h.topk);
  if (h.radius) rec << QString("radius %1").arg(*h.radius);
  if (h.temperature) rec << QString("T %1").arg(*h.temperature);
  if (h.roi_gap) rec << QString("ROI gap %1").arg(*h.roi_gap);
  if (!rec.isEmpty()) s += " · recommends " + rec.join(", ");
  return s;
}

// ---------------------------------------------------------------------------------------------

void WorkerJob::wait() {
  if (m_thread) m_thread->wait();
}

void WorkerJob::launch(std::function<void()> work) {
  if (m_thread) m_thread->deleteLater();
  m_thread = QThread::create(std::move(work));
  m_thread->setParent(this);
  m_thread->start();
}

PropagationJob::PropagationJob(QObject* parent) : WorkerJob(parent) {
  qRegisterMetaType<std::shared_ptr<const corrtrack::Image>>();
}

PropagationJob::~PropagationJob() {
  cancel();
  wait();
}

void PropagationJob::start(const QString& videoPath, int64_t anchor, const Image& anchorMask, int64_t last, const ModelChoice& model) {
  if (running()) throw Error("a propagation is already running");
  m_cancel = false;
  launch([this, videoPath, anchor, anchorMask, last, model] {
    bool cancelled = false;
    QString error;
    try {
      auto features = feature_extractor_open(model.spec, model.device);
      FrameRangeSource range(frame_source_open(videoPath.toStdString()), anchor, last);
      LabelPropagator engine(*features, model.config);
      auto sink = [&](int64_t k, const Image& mask, const Image&) {
        if (k == 0) return;  // the anchor itself
        Q_EMIT maskReady(range.global(k), std::make_shared<const Image>(mask));
      };
      auto onProgress = [&](const ProgressInfo& p) {
        Q_EMIT progress(std::max<int64_t>(0, p.done - 1), std::max<int64_t>(0, p.total - 1), p.rate, p.eta_s);
      };
      auto res = engine.run(range, {Anchor{0, anchorMask}}, sink, onProgress, [this] { return m_cancel.load(); });
      cancelled = res.cancelled;
    } catch (const std::exception& e) {
      error = QString::fromStdString(error_message(e));
    }
    Q_EMIT finished(cancelled, error);
  });
}

// ---------------------------------------------------------------------------------------------

FeatureJob::FeatureJob(QObject* parent) : WorkerJob(parent) {
  qRegisterMetaType<std::shared_ptr<const corrtrack::ui::FeaturePair>>();
}

FeatureJob::~FeatureJob() { wait(); }

void FeatureJob::start(const Image& frameA, int64_t a, const Image& frameB, int64_t b, const ModelChoice& model) {
  if (running()) throw Error("features are already being computed");
  launch([this, frameA, a, frameB, b, model] {
    try {
      torch::NoGradGuard ng;
      auto features = feature_extractor_open(model.spec, model.device);
      auto pair = std::make_shared<FeaturePair>();
      pair->frameA = a;
      pair->frameB = b;
      pair->stride = features->stride();
      pair->scale = model.config.scale;
      auto at_scale = [&](const Image& f) {
        if (pair->scale == 1.0) return f;
        return image_resize(f, std::max(1, int(std::lround(f.width * pair->scale))), std::max(1, int(std::lround(f.height * pair->scale))));
      };
      // The similarity maps are drawn on the CPU: only the two feature maps come back.
      pair->a = features->extract(at_scale(frameA)).to(torch::kCPU);
      pair->b = a == b ? pair->a : features->extract(at_scale(frameB)).to(torch::kCPU);
      Q_EMIT ready(pair);
    } catch (const std::exception& e) {
      Q_EMIT failed(QString::fromStdString(error_message(e)));
    }
  });
}

// ---------------------------------------------------------------------------------------------

torch::Tensor similarityMap(const FeaturePair& f, bool onB, double x, double y, int width, int height) {
  const auto& src = f.a;
  const int64_t h = src.size(1), w = src.size(2);
  // Pixel -> feature cell at the internal resolution.
  const int64_t cx = std::clamp<int64_t>(int64_t(x * f.scale / f.stride), 0, w - 1);
  const int64_t cy = std::clamp<int64_t>(int64_t(y * f.scale / f.stride), 0, h - 1);
  auto q = src.index({torch::indexing::Slice(), cy, cx});                    // [C]
  const auto& dst = onB ? f.b : f.a;
  auto sim = torch::einsum("c,chw->hw", {q, dst}).unsqueeze(0).unsqueeze(0);  // [1, 1, h', w']
  // Nearest upsampling keeps the best cell's value on every pixel of that cell, so the maximum
  // on the query frame lies on the clicked pixel.
  auto up = F::interpolate(sim, F::InterpolateFuncOptions().size(std::vector<int64_t>{
                                    int64_t(std::lround(dst.size(1) * f.stride / f.scale)), int64_t(std::lround(dst.size(2) * f.stride / f.scale))})
                                    .mode(torch::kNearest));
  up = up.squeeze(0).squeeze(0);
  // Crop/pad to the frame size (features cover ceil(size / stride) cells).
  up = up.slice(0, 0, height).slice(1, 0, width);
  if (up.size(0) < height || up.size(1) < width) {
    up = F::pad(up.unsqueeze(0).unsqueeze(0), F::PadFuncOptions({0, width - up.size(1), 0, height - up.size(0)}).mode(torch::kReplicate)).squeeze(0).squeeze(0);
  }
  return up.contiguous();
}

std::vector<std::pair<int, int>> bestMatches(const torch::Tensor& map, int n, int minDistance) {
  std::vector<std::pair<int, int>> out;
  auto flat = map.reshape({-1});
  auto order = std::get<1>(flat.sort(/*dim=*/0, /*descending=*/true));
  const int64_t w = map.size(1);
  auto idx = order.accessor<int64_t, 1>();
  for (int64_t i = 0; i < idx.size(0) && int(out.size()) < n; ++i) {
    const int x = int(idx[i] % w), y = int(idx[i] / w);
    bool far = true;
    for (auto [px, py] : out) far = far && std::hypot(px - x, py - y) >= minDistance;
    if (far) out.emplace_back(x, y);
  }
  return out;
}

Image heatOverlay(const Image& frame, const torch::Tensor& map, float alpha) {
  Image out = frame;
  auto m = map.clamp(-1.0, 1.0).contiguous();
  auto acc = m.accessor<float, 2>();
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      const float v = (acc[y][x] + 1.0f) / 2.0f;  // 0 (dissimilar) .. 1 (identical)
      // Blue -> cyan -> yellow -> red.
      const float r = std::clamp(2.0f * v - 0.5f, 0.0f, 1.0f), g = std::clamp(1.5f - std::abs(2.0f * v - 1.2f) * 1.5f, 0.0f, 1.0f),
                  b = std::clamp(1.0f - 2.0f * v + 0.3f, 0.0f, 1.0f);
      uint8_t* p = out.px(x, y);
      const float c[3] = {r * 255.0f, g * 255.0f, b * 255.0f};
      for (int ch = 0; ch < 3; ++ch) p[ch] = uint8_t(std::lround((1.0f - alpha) * p[ch] + alpha * c[ch]));
    }
  return out;
}

Image pcaImage(const torch::Tensor& features, int width, int height) {
  const int64_t c = features.size(0), h = features.size(1), w = features.size(2);
  auto x = features.reshape({c, h * w}).t().to(torch::kFloat);  // [hw, C]
  x = x - x.mean(0, true);
  auto svd = torch::linalg_svd(x, /*full_matrices=*/false);
  auto v = std::get<2>(svd).slice(0, 0, std::min<int64_t>(3, c)).t();  // [C, 3]
  auto proj = torch::matmul(x, v);                                  // [hw, k]
  if (proj.size(1) < 3) proj = F::pad(proj, F::PadFuncOptions({0, 3 - proj.size(1)}));
  auto lo = std::get<0>(proj.min(0, true)), hi = std::get<0>(proj.max(0, true));
  proj = (proj - lo) / (hi - lo).clamp_min(1e-6);
  auto img = proj.t().reshape({1, 3, h, w});
  img = F::interpolate(img, F::InterpolateFuncOptions().size(std::vector<int64_t>{height, width}).mode(torch::kBilinear).align_corners(false));
  return tensor_to_image(img.squeeze(0).clamp(0, 1));
}

}  // namespace corrtrack::ui
