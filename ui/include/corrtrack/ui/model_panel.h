// The "Model and propagation" dock: which features (bundled model, baselines, a checkpoint), the
// device they run on (auto, cpu, and cuda when this build and machine have it), the engine
// settings (filled with what the model recommends, by the command's rule), the propagate buttons
// and the progress of a running propagation.
#pragma once

#include "corrtrack/ui/jobs.h"

#include <QWidget>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QSpinBox;

namespace corrtrack::ui {

class ModelPanel : public QWidget {
  Q_OBJECT
 public:
  explicit ModelPanel(QWidget* parent = nullptr);
  // The features and engine settings as shown.
  ModelChoice choice() const;
  // Uses a checkpoint (loaded once to check it); false and `error` set when it cannot be loaded.
  bool useCheckpoint(const QString& path, QString* error);
  void useBaseline(const QString& features);   // default | pixels | random
  // Propagation state: buttons enabled or not, progress bar reset to `total` steps.
  void setPropagating(bool running, int total = 0);
  // After a run: a completed one leaves the bar full; a cancelled or failed one resets the bar
  // and clears the fps/ETA line.
  void propagationEnded(bool completed);
  void showProgress(qint64 done, qint64 total, double fps, double etaSeconds);
  void showAdapting(qint64 steps, double secondsLeft);

 Q_SIGNALS:
  void propagateRequested(bool forward);
  void cancelRequested();
  void modelChanged();                              // the features changed: cached features are stale
  void message(QString text, bool error);

 private:
  // Engine settings: the defaults, what the chosen model recommends over them, and the chosen
  // preset over both (the command's order).
  void applyRecommendedSettings();
  QComboBox* m_model = nullptr;
  QComboBox* m_device = nullptr;
  QComboBox* m_precision = nullptr;
  QComboBox* m_preset = nullptr;     // data: a --protocol name, or empty for the model's settings
  QLabel* m_info = nullptr;
  QDoubleSpinBox* m_scale = nullptr;
  QSpinBox* m_context = nullptr;
  QSpinBox* m_topk = nullptr;
  QDoubleSpinBox* m_radius = nullptr;
  QDoubleSpinBox* m_temperature = nullptr;
  QSpinBox* m_refine = nullptr;      // edge refinement radius in frame pixels (0 = off)
  QCheckBox* m_flip = nullptr;       // test-time flip averaging of the features
  QComboBox* m_mode = nullptr;
  QComboBox* m_feedback = nullptr;   // items in LabelFeedback's order: auto, soft, hard
  QDoubleSpinBox* m_feedbackPower = nullptr;  // soft feedback's sharpening power (1 = as predicted)
  QSpinBox* m_adapt = nullptr;       // seconds of adaptation to the video (0 = off)
  QLabel* m_memory = nullptr;
  QPushButton* m_forward = nullptr;
  QPushButton* m_backward = nullptr;
  QPushButton* m_cancel = nullptr;
  QProgressBar* m_progress = nullptr;
  QLabel* m_rate = nullptr;
  QString m_checkpoint;
  int m_roiGap = PropagationConfig().roi_gap;
  double m_refineEps = PropagationConfig().refine_eps;
};

}  // namespace corrtrack::ui
