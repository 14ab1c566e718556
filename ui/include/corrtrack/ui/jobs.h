// Long Studio jobs, each in its own worker thread so the window never blocks: propagation over a
// range of frames, and feature maps for the similarity / PCA views. Results come back as queued
// signals; cancel() is honoured between frames.
#pragma once

#include "corrtrack/inspection.h"
#include "corrtrack/tracking.h"
#include "corrtrack/ui/session.h"
#include "corrtrack/video.h"

#include <QObject>
#include <QString>
#include <QThread>

#include <atomic>
#include <functional>
#include <memory>

namespace corrtrack::ui {

// Which features a job uses (the bundled model, pixels, random or a checkpoint) and the engine
// settings (scale = internal resolution).
struct ModelChoice {
  ModelSpec spec;
  PropagationConfig config;
  torch::Device device = torch::kCPU;   // where features and propagation run
  Precision precision = Precision::Auto; // the encoder's arithmetic (propagation_settings.h)
  double adaptSeconds = 0.0;             // > 0: fine-tune the model on the video first (adaptation.h)
};
// One line describing a checkpoint's metadata (method, encoder, step) for the model panel.
QString describeCheckpoint(const QString& path);

// A job that runs its work in a worker thread of its own, one run at a time.
class WorkerJob : public QObject {
  Q_OBJECT
 public:
  explicit WorkerJob(QObject* parent = nullptr) : QObject(parent) {}
  bool running() const { return m_thread != nullptr && m_thread->isRunning(); }
  // Blocks until the worker has stopped (for shutdown and tests).
  void wait();

 protected:
  // Runs `work` in a new thread (the previous one must have finished).
  void launch(std::function<void()> work);

 private:
  QThread* m_thread = nullptr;
};

class PropagationJob : public WorkerJob {
  Q_OBJECT
 public:
  explicit PropagationJob(QObject* parent = nullptr);
  ~PropagationJob() override;
  // Propagates `anchorMask` of frame `anchor` to frames anchor±1 .. `last` (inclusive; backward
  // when last < anchor) of the session's video, opened again inside the worker (with the
  // session's index: no second pass over the file).
  void start(const Session::Reopen& video, int64_t anchor, const Image& anchorMask, int64_t last, const ModelChoice& model);
  void cancel() { m_cancel = true; }

 Q_SIGNALS:
  // soft: each object's probability as PNG bytes, encoded in the worker (one more resize of the
  // labels and one PNG encode per object and frame).
  void maskReady(qint64 frame, std::shared_ptr<const corrtrack::Image> mask, std::shared_ptr<const corrtrack::ui::SoftMasks> soft);
  void progress(qint64 done, qint64 total, double fps, double etaSeconds);
  // While the model adapts to the video (before the first mask): steps done, seconds left.
  void adapting(qint64 steps, double secondsLeft);
  void finished(bool cancelled, QString error);

 private:
  // The features of a run: the model's, or (adaptSeconds > 0) the model adapted to the video and
  // to the anchor's mask (the anchor term, adaptation.h) — kept for the next runs on the same
  // video with the same settings and the same anchor mask. Null when cancelled.
  std::shared_ptr<FeatureExtractor> features(const Session::Reopen& video, const ModelChoice& model, int64_t anchor,
                                             const Image& anchorMask);
  std::atomic<bool> m_cancel{false};
  // The last adapted model (used only by the worker thread, one run at a time).
  std::shared_ptr<FeatureExtractor> m_adapted;
  std::string m_adaptedKey;
};

// Feature maps of two frames (corrtrack::FeaturePair, inspection.h), for similarity (click a
// pixel on frame A, see its cosine similarity on A and on B) and for the PCA colouring.
class FeatureJob : public WorkerJob {
  Q_OBJECT
 public:
  explicit FeatureJob(QObject* parent = nullptr);
  ~FeatureJob() override;
  void start(const Image& frameA, int64_t a, const Image& frameB, int64_t b, const ModelChoice& model);

 Q_SIGNALS:
  void ready(std::shared_ptr<const corrtrack::FeaturePair> features);
  void failed(QString error);
};

// The pictures of those features (similarity_map, best_matches, heat_overlay, pca_image) are
// drawn by inspection.h, the same code as `corrtrack inspect features`.

}  // namespace corrtrack::ui

Q_DECLARE_METATYPE(std::shared_ptr<const corrtrack::Image>)
Q_DECLARE_METATYPE(std::shared_ptr<const corrtrack::ui::SoftMasks>)
Q_DECLARE_METATYPE(std::shared_ptr<const corrtrack::FeaturePair>)
