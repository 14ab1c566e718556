// CorrTrack Studio's model layer: the open video, its masks and anchors, the objects, undo/redo,
// the workspace on disk and the export formats. No widgets here (the window only draws and
// forwards input); propagation and feature jobs run in worker threads (jobs.h).
#pragma once

#include "corrtrack/mask_rle.h"
#include "corrtrack/tracking.h"
#include "corrtrack/video.h"

#include <QObject>
#include <QPointF>
#include <QString>
#include <QTemporaryDir>

#include <deque>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <vector>

namespace corrtrack::ui {

// A propagated frame's soft masks as PNG files' bytes: [i] is object i + 1's 8-bit probability at
// every pixel (LabelPropagator's SoftSink, encoded by image_encode_png).
using SoftMasks = std::vector<std::string>;

class Session : public QObject {
  Q_OBJECT
 public:
  explicit Session(QObject* parent = nullptr);

  // Opens a video file or frame folder; throws Error naming the path. Masks and anchors are saved
  // in a workspace folder as they change (each mask PNG and the anchors file written atomically
  // right after the edit) and loaded from it when it already holds this video's workspace:
  // `workspace` when given, else the video's automatic workspace (automaticWorkspace). With
  // `autosave` false and no `workspace`, nothing is written: a scratch session, whose edits count
  // as unsaved until saveWorkspaceAs.
  void open(const QString& path, const QString& workspace = QString(), bool autosave = true);
  bool isOpen() const { return m_source != nullptr; }
  QString path() const { return m_path; }
  QString workspace() const { return m_workspace; }
  // The automatic workspace of a video: $CORRTRACK_WORKSPACES/<name>-<hash> when that variable is
  // set; else next to the video when its folder is writable (VIDEO.corrtrack/ beside a video file,
  // FOLDER/.corrtrack/ inside a frame folder); else <per-user data folder>/workspaces/<name>-<hash> (hash: of the
  // video's absolute path, so two videos of one name do not share a workspace).
  static QString automaticWorkspace(const QString& video);
  // Why the automatic workspace could not be used at open (the session is then a scratch one);
  // empty when it is in use.
  QString workspaceError() const { return m_workspaceError; }
  // Writes every mask and the anchors into `dir` (created; masks of frames without one removed)
  // and saves there from now on. Throws Error when `dir` holds another video's workspace or
  // cannot be written.
  void saveWorkspaceAs(const QString& dir);
  // Edits not on disk: a scratch session's, or those whose save failed (retried at every edit).
  bool hasUnsavedChanges() const { return !m_dirty.empty() || m_anchorsDirty; }
  int64_t frameCount() const { return m_frames; }
  // What a worker thread needs to open the video again without counting its frames a second time
  // (a whole decode for a video file): the path, options carrying the decode index, the count.
  struct Reopen {
    std::string path;
    FrameSourceOptions options;
    int64_t frames = 0;
  };
  Reopen reopen() const { return {m_path.toStdString(), m_reopen, m_frames}; }
  int width() const { return m_width; }
  int height() const { return m_height; }
  double fps() const { return m_fps; }
  std::string frameName(int64_t k) const;

  // The RGB frame k (decoded on demand; the last kCacheFrames are kept).
  const Image& frame(int64_t k);
  // The index mask of frame k (all zero where nothing was annotated or propagated).
  Image mask(int64_t k) const;
  bool hasMask(int64_t k) const { return m_masks.count(k) > 0; }
  size_t maskCount() const { return m_masks.size(); }
  // Memory held by the masks and the undo/redo history (all run-length encoded, MaskRle).
  size_t maskBytes() const;
  // Annotated or corrected frames: propagation starts from them and never overwrites them.
  const std::set<int64_t>& anchors() const { return m_anchors; }
  bool isAnchor(int64_t k) const { return m_anchors.count(k) > 0; }

  // What a frame's mask is, as the timeline shows it: none; propagated by the model; an anchor the
  // user annotated before anything was propagated there; an anchor that corrects a propagated mask.
  enum class FrameState { None, Propagated, Annotated, Corrected };
  FrameState state(int64_t k) const;

  // Editing (each edit makes frame k an anchor and can be undone). id 0 erases.
  void paintStroke(int64_t k, const std::vector<QPointF>& points, double radius, uint8_t id);
  void fillPolygon(int64_t k, const std::vector<QPointF>& points, uint8_t id);
  void floodFill(int64_t k, QPointF seed, uint8_t id);
  // Object `id` on frame k becomes `region` (nonzero = object) drawn over `base` (frame k's mask
  // before the click sequence that made the region): the object's pixels of `base` are cleared,
  // then the region takes the background and the object's own pixels — other objects keep theirs.
  void setObjectRegion(int64_t k, const Image& base, const Image& region, uint8_t id);
  // Imports a mask PNG as frame k's annotation; throws Error when it cannot be read or has another size.
  void importMask(int64_t k, const QString& png);
  void clearFrame(int64_t k);
  void undo();
  void redo();
  bool canUndo() const { return !m_undo.empty(); }
  bool canRedo() const { return !m_redo.empty(); }

  // Objects: ids 1..255 in use, in order. Objects found in loaded masks are added automatically.
  const std::vector<int>& objects() const { return m_objects; }
  int addObject();
  // Removes the object from every mask (undoable per frame only through a new annotation).
  void removeObject(int id);

  // A propagated mask for frame k (never replaces an anchor), with its soft masks when the
  // propagation kept them. Soft masks are files in the workspace's soft/ folder (a temporary
  // folder for a scratch session), object_<id>/<frame>.png; an edit of the frame removes them.
  void setPropagated(int64_t k, const Image& mask, const std::shared_ptr<const SoftMasks>& soft = nullptr);
  // Whether frame k's soft masks are kept (a propagated frame whose mask was not edited since).
  bool hasSoftMasks(int64_t k) const { return m_soft.count(k) > 0; }
  // The frames a propagation from anchor `from` should fill: forward up to the next anchor
  // (exclusive) or the end, backward down to the previous anchor or frame 0.
  std::pair<int64_t, int64_t> propagationRange(int64_t from, bool forward) const;

  // Export: palette PNGs named like the frames (readable by `corrtrack eval`), one folder per
  // object of binary 0/255 PNGs, or an overlay video. Files are written atomically.
  void exportPalettePngs(const QString& dir) const;
  void exportBinaryMasks(const QString& dir) const;
  // Every frame's masks as a COCO data set with RLE annotations (JSON, written atomically).
  void exportCoco(const QString& file) const;
  // Soft masks, DIR/object_<id>/<frame>.png as `corrtrack propagate --soft` writes them: 8-bit
  // probability of the object (255 = certain) for propagated frames that kept them; 0/255 from
  // the mask for anchors, edited frames and frames without soft masks.
  void exportSoftMasks(const QString& dir) const;
  void exportOverlayVideo(const QString& file, OverlayMode mode, float alpha);

 Q_SIGNALS:
  void maskChanged(qint64 frame);
  // A save into the workspace failed (the edit stays in memory, unsaved, and is retried).
  void saveFailed(QString message);
  void objectsChanged();
  void undoStateChanged();

 private:
  struct Edit {
    int64_t frame;
    bool had_mask, was_anchor, was_corrected;
    MaskRle mask;
  };
  Image& editableMask(int64_t k);   // frame k's mask, decoded for an edit (between beginEdit and finishEdit)
  void beginEdit(int64_t k);
  // Restores the newest edit of `from`, recording the current state in `to` (undo / redo).
  void swapEdit(std::deque<Edit>& from, std::deque<Edit>& to);
  void finishEdit(int64_t k);
  void noteObjects(const Image& mask);
  // Marks frame k's mask (or the anchors file) unsaved and writes what is unsaved.
  void saveFrame(int64_t k);
  void saveAnchors();
  void flush();
  void writeFrame(int64_t k) const;
  void writeAnchors() const;
  void loadWorkspace();
  // Soft masks: the folder in use (the workspace's soft/, or a temporary one), storing and
  // removing a frame's files, and finding those a workspace holds.
  void useSoftFolder();
  void storeSoft(int64_t k, const SoftMasks* soft);
  void dropSoft(int64_t k);
  void loadSoft();
  void copySoft(const std::filesystem::path& to) const;   // the kept soft masks into another folder

  static constexpr size_t kCacheFrames = 48;   // decoded frames kept for display
  static constexpr size_t kUndoDepth = 100;    // edits kept for undo

  std::unique_ptr<FrameSource> m_source;
  QString m_path, m_workspace, m_workspaceError;
  int64_t m_frames = 0;
  FrameSourceOptions m_reopen;
  int m_width = 0, m_height = 0;
  double m_fps = 25.0;
  std::list<std::pair<int64_t, Image>> m_cache;  // most recent first
  std::map<int64_t, MaskRle> m_masks;   // every frame's mask, run-length encoded
  // The mask being edited (editableMask decodes it; finishEdit encodes it back).
  int64_t m_editFrame = -1;
  Image m_editing;
  std::set<int64_t> m_anchors;
  std::set<int64_t> m_corrected;   // anchors made over a propagated mask (a subset of m_anchors)
  std::vector<int> m_objects;
  std::deque<Edit> m_undo, m_redo;
  std::set<int64_t> m_dirty;       // frames whose mask file is not up to date
  bool m_anchorsDirty = false;
  bool m_saveFailing = false;      // one saveFailed per run of failures
  QString m_softDir;               // where soft masks are kept (empty: not kept)
  std::unique_ptr<QTemporaryDir> m_scratchSoft;   // a scratch session's soft folder
  std::set<int64_t> m_soft;        // frames whose soft masks are in m_softDir
};

}  // namespace corrtrack::ui
