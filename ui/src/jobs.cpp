// Worker-thread jobs of the Studio: propagation over a frame range, and the feature maps the
// inspection view draws (with inspection.h).
#include "corrtrack/ui/jobs.h"

#include "corrtrack/adaptation.h"
#include "corrtrack/read_ahead.h"

#include <QFileInfo>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>


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
  if (h.refine) rec << QString("refine %1 px").arg(*h.refine);
  if (h.feedback_power) rec << QString("feedback power %1").arg(*h.feedback_power);
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
  qRegisterMetaType<std::shared_ptr<const corrtrack::ui::SoftMasks>>();
}

PropagationJob::~PropagationJob() {
  cancel();
  wait();
}

std::shared_ptr<FeatureExtractor> PropagationJob::features(const Session::Reopen& video, const ModelChoice& model, int64_t anchor,
                                                           const Image& anchorMask) {
  if (!(model.adaptSeconds > 0.0)) return feature_extractor_open(model.spec, model.device, model.precision);
  const std::string checkpoint = model_checkpoint(model.spec);
  if (checkpoint.empty()) throw Error("adapting to the video needs a trained model (the bundled one or a checkpoint), not " + model.spec.features);
  const std::string mask(anchorMask.data.begin(), anchorMask.data.end());
  const std::string key = video.path + "\n" + checkpoint + "\n" + std::to_string(model.adaptSeconds) + "\n" +
                          model.device.str() + "\n" + precision_name(model.precision) + "\n" + std::to_string(anchor) + "\n" +
                          std::to_string(std::hash<std::string>{}(mask)) + "\n" + std::to_string(model.config.scale) + "\n" +
                          std::to_string(model.config.topk) + "\n" + std::to_string(model.config.temperature);
  if (m_adapted && key == m_adaptedKey) return m_adapted;
  AdaptConfig cfg;
  cfg.seconds = model.adaptSeconds;
  cfg.frames = video.frames;
  cfg.device = model.device;
  cfg.anchors = {AdaptAnchor{frame_source_open(video.path, video.options)->frame(anchor), anchorMask}};
  adaptation_readout(cfg, model.config);
  cfg.cancel = [this] { return m_cancel.load(); };
  cfg.progress = [this](const ProgressInfo& p) { Q_EMIT adapting(p.done, p.eta_s); };
  std::shared_ptr<FeatureExtractor> f = feature_extractor_adapted(checkpoint, video.path, cfg, model.precision);
  if (!f) return nullptr;
  m_adapted = f;
  m_adaptedKey = key;
  return f;
}

void PropagationJob::start(const Session::Reopen& video, int64_t anchor, const Image& anchorMask, int64_t last, const ModelChoice& model) {
  if (running()) throw Error("a propagation is already running");
  m_cancel = false;
  launch([this, video, anchor, anchorMask, last, model] {
    bool cancelled = false;
    QString error;
    try {
      auto features = this->features(video, model, anchor, anchorMask);
      if (!features) {
        Q_EMIT finished(true, QString());
        return;
      }
      // Backward propagation reads the video backward: in blocks, one seek per 16 frames.
      FrameRangeSource range(std::make_unique<ReadAheadSource>(frame_source_open(video.path, video.options)), anchor, last);
      LabelPropagator engine(*features, model.config);
      // The soft masks of a frame arrive just before its mask and travel with it.
      std::shared_ptr<SoftMasks> soft;
      engine.set_soft_sink([&](int64_t k, const std::vector<Image>& objects) {
        if (k == 0) return;
        soft = std::make_shared<SoftMasks>();
        for (const auto& o : objects) soft->push_back(image_encode_png(o));
      });
      auto sink = [&](int64_t k, const Image& mask, const Image&) {
        if (k == 0) return;  // the anchor itself
        Q_EMIT maskReady(range.global(k), std::make_shared<const Image>(mask), std::move(soft));
        soft.reset();
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
  qRegisterMetaType<std::shared_ptr<const corrtrack::FeaturePair>>();
}

FeatureJob::~FeatureJob() { wait(); }

void FeatureJob::start(const Image& frameA, int64_t a, const Image& frameB, int64_t b, const ModelChoice& model) {
  if (running()) throw Error("features are already being computed");
  launch([this, frameA, a, frameB, b, model] {
    try {
      torch::NoGradGuard ng;
      auto features = feature_extractor_open(model.spec, model.device, model.precision);
      // The similarity maps are drawn on the CPU: only the two feature maps come back.
      auto pair = std::make_shared<FeaturePair>(feature_pair_compute(*features, frameA, a, frameB, b, model.config.scale));
      Q_EMIT ready(pair);
    } catch (const std::exception& e) {
      Q_EMIT failed(QString::fromStdString(error_message(e)));
    }
  });
}

}  // namespace corrtrack::ui
