// CorrTrack Studio's window: frame view and timeline, annotation tools and objects, model and
// engine settings, propagation with progress and cancel, feature inspection (similarity on the
// current and another frame, PCA), training as a child process with a live loss curve, export.
// The window forwards input to the Session and draws what it holds; jobs run in workers.
#pragma once

#include "corrtrack/ui/frame_view.h"
#include "corrtrack/ui/jobs.h"
#include "corrtrack/ui/session.h"
#include "corrtrack/ui/training_runner.h"

#include <QMainWindow>

class QAction;
class QButtonGroup;
class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QProgressBar;
class QPushButton;
class QSlider;
class QSpinBox;
class QTimer;
class QToolButton;
class QLineSeries;
class QChartView;

namespace corrtrack::ui {

// What the main canvas shows (the order of the View combo box).
enum class ViewMode { Masks = 0, Similarity = 1, Pca = 2 };

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // Opens a video or frame folder (with an optional workspace folder); on failure shows the
  // message in the window, keeps what was open and returns false.
  bool openVideo(const QString& path, const QString& workspace = QString());
  // Imports a mask PNG on the current frame; false (message shown) when it does not fit.
  bool importMask(const QString& png);
  // Uses a checkpoint for features; false (message shown) when it cannot be loaded.
  bool useCheckpoint(const QString& path);
  void useBaseline(const QString& features);  // default | pixels | random

  void setCurrentFrame(int64_t k);
  int64_t currentFrame() const { return m_current; }
  void selectObject(int id);
  int currentObject() const { return m_object; }
  // Starts propagation from the current frame (which must be an anchor); false when it cannot.
  bool propagate(bool forward);
  void cancelPropagation();
  bool propagationRunning() const { return m_propagation.running(); }
  PropagationJob& propagationJob() { return m_propagation; }
  // Inspection at an image pixel of the current frame: computes features (worker) if needed.
  void inspectAt(QPointF imagePos);
  const torch::Tensor& similarityCurrent() const { return m_simCurrent; }
  const torch::Tensor& similarityOther() const { return m_simOther; }
  FeatureJob& featureJob() { return m_features; }
  void setOtherFrame(int64_t k);
  // What the main canvas shows.
  void setViewMode(ViewMode mode);

  Session& session() { return m_session; }
  FrameView& view() { return *m_view; }
  QString lastMessage() const { return m_lastMessage; }
  ModelChoice modelChoice() const;

 protected:
  void keyPressEvent(QKeyEvent*) override;
  void dragEnterEvent(QDragEnterEvent*) override;
  void dropEvent(QDropEvent*) override;
  void closeEvent(QCloseEvent*) override;

 private:
  void buildUi();
  void buildMenus();
  QWidget* buildToolsPanel();
  QWidget* buildModelPanel();
  QWidget* buildInspectPanel();
  QWidget* buildTrainingPanel();
  void refresh();
  void refreshObjects();
  void refreshTimeline();
  void showMessage(const QString& text, bool error = false);
  // Fills the engine settings with what the model recommends over the defaults (the command's
  // rule, propagation_settings.h); false (message shown) when its metadata is invalid.
  bool applyRecommendedSettings(const ModelChoice& choice);
  void onPropagationFinished(bool cancelled, const QString& error);
  void onFeaturesReady(std::shared_ptr<const FeaturePair> f);
  void updateSimilarity();
  void startTraining();
  void showLossCurve(const QList<QPointF>& points);
  void exportPngs();
  void exportBinary();
  void exportVideo();

  Session m_session;
  PropagationJob m_propagation;
  FeatureJob m_features;
  int64_t m_current = 0, m_other = 0;
  int m_object = 1;
  ViewMode m_viewMode = ViewMode::Masks;
  QString m_lastMessage;
  // Inspection state.
  std::shared_ptr<const FeaturePair> m_pair;
  bool m_haveQuery = false;
  QPointF m_query;
  torch::Tensor m_simCurrent, m_simOther;
  // Propagation state.
  int64_t m_propAnchor = -1;
  QString m_checkpoint;

  FrameView* m_view = nullptr;
  FrameView* m_otherView = nullptr;
  QSlider* m_timeline = nullptr;
  QLabel* m_frameLabel = nullptr;
  QLabel* m_anchorLabel = nullptr;
  QToolButton* m_play = nullptr;
  QTimer* m_playTimer = nullptr;
  QListWidget* m_objects = nullptr;
  QButtonGroup* m_tools = nullptr;
  QSpinBox* m_brush = nullptr;
  QComboBox* m_overlay = nullptr;
  QSlider* m_opacity = nullptr;
  QComboBox* m_viewCombo = nullptr;
  QComboBox* m_model = nullptr;
  QLabel* m_modelInfo = nullptr;
  QDoubleSpinBox* m_scale = nullptr;
  QSpinBox* m_context = nullptr;
  QSpinBox* m_topk = nullptr;
  QDoubleSpinBox* m_radius = nullptr;
  QDoubleSpinBox* m_temperature = nullptr;
  QComboBox* m_mode = nullptr;
  int m_roiGap = PropagationConfig().roi_gap;
  QLabel* m_memory = nullptr;
  QPushButton* m_forward = nullptr;
  QPushButton* m_backward = nullptr;
  QPushButton* m_cancel = nullptr;
  QProgressBar* m_progress = nullptr;
  QLabel* m_rate = nullptr;
  QLabel* m_message = nullptr;
  QSpinBox* m_otherSpin = nullptr;
  QAction* m_undo = nullptr;
  QAction* m_redo = nullptr;
  // Training panel.
  QComboBox* m_trainMethod = nullptr;
  QLineEdit* m_trainData = nullptr;
  QLineEdit* m_trainOut = nullptr;
  QSpinBox* m_trainSteps = nullptr;
  QPushButton* m_trainStart = nullptr;
  QPushButton* m_trainCancel = nullptr;
  QPushButton* m_trainUse = nullptr;
  QLabel* m_trainStatus = nullptr;
  QLineSeries* m_lossSeries = nullptr;
  QChartView* m_lossChart = nullptr;
  TrainingRunner m_training;
};

}  // namespace corrtrack::ui
