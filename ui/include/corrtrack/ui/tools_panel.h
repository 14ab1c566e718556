// The "Objects and tools" dock: the object list, the annotation tools, brush radius, overlay,
// opacity and the canvas view. It holds no state of the video: the window tells it the objects
// and listens to what the user picks.
#pragma once

#include "corrtrack/ui/frame_view.h"
#include "corrtrack/video.h"

#include <QWidget>

#include <vector>

class QButtonGroup;
class QComboBox;
class QListWidget;
class QSlider;
class QSpinBox;

namespace corrtrack::ui {

// What the main canvas shows (the order of the View combo box).
enum class ViewMode { Masks = 0, Similarity = 1, Pca = 2 };

class ToolsPanel : public QWidget {
  Q_OBJECT
 public:
  explicit ToolsPanel(QWidget* parent = nullptr);
  // Shows the objects (DAVIS colours) with `current` selected; no signal is emitted.
  void setObjects(const std::vector<int>& ids, int current);
  void setViewMode(ViewMode mode);   // no signal is emitted
  void chooseTool(Tool tool);        // as if its button was clicked
  OverlayMode overlayMode() const;
  float opacity() const;             // 0..1

 Q_SIGNALS:
  void addObjectRequested();
  void removeObjectRequested();
  void objectChosen(int row);
  void toolChosen(corrtrack::ui::Tool tool);
  void brushRadiusChanged(int radius);
  void overlayChanged();
  void viewModeChosen(corrtrack::ui::ViewMode mode);
  void clearFrameRequested();

 private:
  QListWidget* m_objects = nullptr;
  QButtonGroup* m_tools = nullptr;
  QSpinBox* m_brush = nullptr;
  QComboBox* m_overlay = nullptr;
  QSlider* m_opacity = nullptr;
  QComboBox* m_view = nullptr;
};

}  // namespace corrtrack::ui
