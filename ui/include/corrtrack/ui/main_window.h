// CorrTrack Studio's window: the frame view and timeline in the centre, one dock per panel
// (ToolsPanel, ModelPanel, InspectPanel, TrainingPanel), menus. The window forwards input to the
// Session and draws what it holds; propagation and features run in worker jobs, training in a
// child process owned by the training panel.
#pragma once

#include "corrtrack/click_segment.h"
#include "corrtrack/ui/frame_view.h"
#include "corrtrack/ui/inspect_panel.h"
#include "corrtrack/ui/jobs.h"
#include "corrtrack/ui/model_panel.h"
#include "corrtrack/ui/session.h"
#include "corrtrack/ui/timeline_strip.h"
#include "corrtrack/ui/tools_panel.h"
#include "corrtrack/ui/training_panel.h"

#include <QMainWindow>

#include <functional>

class QAction;
class QDockWidget;
class QMenu;
class QLabel;
class QSlider;
class QTimer;
class QToolButton;

namespace corrtrack::ui {

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  // `remember`: restore the window layout saved at the last close and save it at this one
  // (QSettings "CorrTrack"/"Studio", with the recent files); off for offscreen renders.
  explicit MainWindow(QWidget* parent = nullptr, bool remember = true);
  ~MainWindow() override;

  // Opens a video or frame folder; on failure shows the message in the window, keeps what was
  // open and returns false. Masks are saved as they change in `workspace`, else in the video's
  // automatic workspace (Session::automaticWorkspace) unless autosave is off. When the open
  // session has unsaved edits the user is asked first (false when they cancel).
  bool openVideo(const QString& path, const QString& workspace = QString());
  // Off: videos opened from now on get no automatic workspace (scratch sessions).
  void setAutosave(bool on) { m_autosave = on; }
  // Writes the session into `dir` and keeps saving there; false (message shown) on failure.
  bool saveWorkspaceAs(const QString& dir);
  // The recent videos, newest first (at most 10).
  static QStringList recentFiles();
  // Imports a mask PNG on the current frame; false (message shown) when it does not fit.
  bool importMask(const QString& png);
  // Uses a checkpoint for features; false (message shown) when it cannot be loaded.
  bool useCheckpoint(const QString& path);
  void useBaseline(const QString& features);  // default | pixels | random

  void setCurrentFrame(int64_t k);
  // The nearest anchor after / before the current frame (stays when there is none).
  void nextAnchor();
  void previousAnchor();
  TimelineStrip& timelineStrip() { return *m_strip; }
  // Every keyboard shortcut as (keys, what it does), in the order Help ▸ Keyboard shortcuts lists them.
  QList<QPair<QString, QString>> shortcuts() const;
  int64_t currentFrame() const { return m_current; }
  void selectObject(int id);
  int currentObject() const { return m_object; }
  // Starts propagation from the current frame (which must be an anchor); false when it cannot.
  bool propagate(bool forward);
  void cancelPropagation();
  bool propagationRunning() const { return m_propagation.running(); }
  PropagationJob& propagationJob() { return m_propagation; }
  // Click to segment on the current frame for the current object: adds the click and replaces
  // the object's mask on this frame by the segmentation of all clicks so far (one undoable edit
  // per click; Undo takes back the last click). The clicks start over on another frame, object or tool.
  void segmentClick(QPointF imagePos, bool positive);
  size_t clickCount() const { return m_clicks.size(); }
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
  ModelChoice modelChoice() const { return m_model->choice(); }

 protected:
  void keyPressEvent(QKeyEvent*) override;
  void dragEnterEvent(QDragEnterEvent*) override;
  void dropEvent(QDropEvent*) override;
  void closeEvent(QCloseEvent*) override;

 private:
  void buildCentre();
  void buildDocks();
  void buildMenus();
  void buildToolbar();
  void showShortcuts();
  void connectPanels();
  void connectJobs();
  void refresh();
  void refreshObjects();
  void refreshTimeline();   // the counts line
  void rebuildTimeline();   // the strip, from every frame's state
  void showMessage(const QString& text, bool error = false);
  // Runs `action`; an exception becomes an error message in the window and false.
  bool attempt(const std::function<void()>& action);
  void onPropagationFinished(bool cancelled, const QString& error);
  void onFeaturesReady(std::shared_ptr<const FeaturePair> f);
  void updateSimilarity();
  void resetClicks();
  void showClickMarkers();
  void exportPngs();
  void exportBinary();
  void exportVideo();
  void exportCoco();
  void exportSoft();
  QString askExportFolder(const QString& kind, const QString& title);
  QString askExportFile(const QString& kind, const QString& title, const QString& name, const QString& filter);
  // Asks what to do with unsaved edits: true when they were saved or may be discarded.
  bool confirmUnsaved();
  void noteRecent(const QString& path);

  Session m_session;
  PropagationJob m_propagation;
  FeatureJob m_features;
  int64_t m_current = 0, m_other = 0;
  int m_object = 1;
  ViewMode m_viewMode = ViewMode::Masks;
  QString m_lastMessage;
  bool m_autosave = true, m_remember = true;
  // Click-to-segment state: the clicks on (frame, object) and that frame's mask before them.
  std::vector<Click> m_clicks;
  int64_t m_clickFrame = -1;
  int m_clickObject = 0;
  Image m_clickBase;
  // Inspection state.
  std::shared_ptr<const FeaturePair> m_pair;
  bool m_haveQuery = false;
  QPointF m_query;
  torch::Tensor m_simCurrent, m_simOther;

  FrameView* m_view = nullptr;
  QSlider* m_timeline = nullptr;
  TimelineStrip* m_strip = nullptr;
  // Actions with window-wide shortcuts (menus, toolbar and the shortcuts list share them).
  QAction* m_actPlay = nullptr;
  QAction* m_actNextAnchor = nullptr;
  QAction* m_actPrevAnchor = nullptr;
  QAction* m_actForward = nullptr;
  QAction* m_actBackward = nullptr;
  QAction* m_actCancel = nullptr;
  QAction* m_actFit = nullptr;
  QMenu* m_viewMenu = nullptr;
  QLabel* m_frameLabel = nullptr;
  QLabel* m_anchorLabel = nullptr;
  QLabel* m_message = nullptr;
  QToolButton* m_play = nullptr;
  QTimer* m_playTimer = nullptr;
  QAction* m_undo = nullptr;
  QAction* m_redo = nullptr;
  ToolsPanel* m_tools = nullptr;
  ModelPanel* m_model = nullptr;
  InspectPanel* m_inspect = nullptr;
  TrainingPanel* m_training = nullptr;
  QDockWidget* m_modelDock = nullptr;
  QDockWidget* m_inspectDock = nullptr;
};

}  // namespace corrtrack::ui
