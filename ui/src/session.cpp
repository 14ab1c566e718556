// Studio session: frames (LRU cache), masks, anchors, objects, undo/redo, workspace and export.
#include "corrtrack/ui/session.h"

#include "corrtrack/mask_export.h"
#include "corrtrack/read_ahead.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace corrtrack::ui {

namespace {
constexpr const char* kWorkspaceFile = "workspace.json";  // video path, anchors, objects

nlohmann::json readWorkspaceFile(const fs::path& file) {
  std::ifstream in(file);
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error("workspace file '" + file.string() + "' is not valid JSON");
  return j;
}

// Whether a workspace file names `video` (by the path given, or its absolute path).
bool namesVideo(const nlohmann::json& j, const QString& video) {
  if (j.value("video", std::string()) == video.toStdString()) return true;
  const std::string absolute = j.value("video_absolute", std::string());
  return !absolute.empty() && absolute == QFileInfo(video).absoluteFilePath().toStdString();
}

// Object `id`'s pixels of an index mask as a 0/255 image.
Image objectMask(const Image& mask, int id) {
  Image bin(mask.width, mask.height, 1, 0);
  for (size_t i = 0; i < mask.data.size(); ++i) bin.data[i] = mask.data[i] == id ? 255 : 0;
  return bin;
}

std::string objectFolder(int id) { return "object_" + std::to_string(id); }
}

Session::Session(QObject* parent) : QObject(parent) {}

QString Session::automaticWorkspace(const QString& video) {
  const QFileInfo info(video);
  const QString absolute = info.absoluteFilePath();
  const QString name = info.fileName().isEmpty() ? QStringLiteral("video") : info.fileName();
  const QString hashed = name + "-" + QCryptographicHash::hash(absolute.toUtf8(), QCryptographicHash::Sha1).toHex().left(10);
  const QByteArray root = qgetenv("CORRTRACK_WORKSPACES");
  if (!root.isEmpty()) return QDir(QString::fromLocal8Bit(root)).filePath(hashed);
  // A frame folder keeps it inside, hidden (a sibling would look like one more sequence to a
  // DAVIS-layout reader); a video file beside it.
  const QFileInfo home(info.isDir() ? absolute : info.absolutePath());
  if (home.isDir() && home.isWritable()) return info.isDir() ? QDir(absolute).filePath(".corrtrack") : absolute + ".corrtrack";
  return QDir(QStandardPaths::writableLocation(QStandardPaths::GenericDataLocation)).filePath("corrtrack/workspaces/" + hashed);
}

void Session::open(const QString& path, const QString& workspace, bool autosave) {
  // Stepping backward decodes blocks of 16 frames (one seek each) rather than seeking per frame.
  std::unique_ptr<FrameSource> file = frame_source_open(path.toStdString());
  FrameSourceOptions reopen = frame_source_reopen_options(*file);   // counts (indexes) the frames once
  std::unique_ptr<FrameSource> source = std::make_unique<ReadAheadSource>(std::move(file), 16, 16);
  const int64_t n = source->size();
  if (n < 1) throw Error("'" + path.toStdString() + "' holds no frames");
  const auto info = source->info();
  m_source = std::move(source);
  m_path = path;
  m_frames = n;
  m_reopen = std::move(reopen);
  m_width = info.width;
  m_height = info.height;
  m_fps = info.fps > 0 ? info.fps : 25.0;
  m_cache.clear();
  m_masks.clear();
  m_anchors.clear();
  m_corrected.clear();
  m_objects.clear();
  m_undo.clear();
  m_redo.clear();
  m_dirty.clear();
  m_anchorsDirty = false;
  m_saveFailing = false;
  m_editFrame = -1;
  m_editing = Image();
  m_soft.clear();
  m_workspaceError.clear();
  m_workspace = workspace.isEmpty() && autosave ? automaticWorkspace(path) : workspace;
  if (!m_workspace.isEmpty()) {
    try {
      dir_ensure_writable((fs::path(m_workspace.toStdString()) / "masks").string());
      loadWorkspace();
    } catch (const std::exception& e) {
      if (!workspace.isEmpty()) throw;   // a folder the user chose must work
      // The automatic workspace never stops a video from opening: the session is a scratch one
      // and says why.
      m_workspaceError = QString::fromStdString(error_message(e));
      m_workspace.clear();
      m_masks.clear();
      m_anchors.clear();
      m_corrected.clear();
      m_objects.clear();
    }
  }
  useSoftFolder();
  loadSoft();
  if (m_objects.empty()) m_objects.push_back(1);
  Q_EMIT objectsChanged();
  Q_EMIT undoStateChanged();
}

std::string Session::frameName(int64_t k) const { return m_source ? m_source->frame_name(k) : std::to_string(k); }

const Image& Session::frame(int64_t k) {
  if (!m_source) throw Error("no video is open");
  if (k < 0 || k >= m_frames) throw Error("frame " + std::to_string(k) + " is outside the video");
  for (auto it = m_cache.begin(); it != m_cache.end(); ++it) {
    if (it->first == k) {
      m_cache.splice(m_cache.begin(), m_cache, it);
      return m_cache.front().second;
    }
  }
  m_cache.emplace_front(k, m_source->frame(k));
  if (m_cache.size() > kCacheFrames) m_cache.pop_back();
  return m_cache.front().second;
}

Image Session::mask(int64_t k) const {
  auto it = m_masks.find(k);
  if (it != m_masks.end()) return it->second.decode();
  return Image(m_width, m_height, 1, 0);
}

Session::FrameState Session::state(int64_t k) const {
  if (isAnchor(k)) return m_corrected.count(k) ? FrameState::Corrected : FrameState::Annotated;
  return hasMask(k) ? FrameState::Propagated : FrameState::None;
}

size_t Session::maskBytes() const {
  size_t n = m_editing.data.capacity();
  for (const auto& [k, m] : m_masks) n += m.bytes();
  for (const auto* history : {&m_undo, &m_redo}) {
    for (const auto& e : *history) n += e.mask.bytes();
  }
  return n;
}

Image& Session::editableMask(int64_t k) {
  if (m_editFrame != k) {
    m_editing = mask(k);
    m_editFrame = k;
  }
  return m_editing;
}

void Session::beginEdit(int64_t k) {
  if (k < 0 || k >= m_frames) throw Error("frame " + std::to_string(k) + " is outside the video");
  Edit e{k, hasMask(k), isAnchor(k), m_corrected.count(k) > 0, hasMask(k) ? m_masks.at(k) : MaskRle()};
  m_editFrame = -1;   // the next editableMask decodes the current mask
  dropSoft(k);        // the soft masks no longer describe the mask (undo brings back the mask only)
  // Editing a propagated mask corrects it.
  if (hasMask(k) && !isAnchor(k)) m_corrected.insert(k);
  m_undo.push_back(std::move(e));
  if (m_undo.size() > kUndoDepth) m_undo.pop_front();
  m_redo.clear();
}

void Session::finishEdit(int64_t k) {
  m_anchors.insert(k);
  if (m_editFrame == k) {
    m_masks[k] = MaskRle(m_editing);
    noteObjects(m_editing);
  } else {
    m_masks.emplace(k, MaskRle(Image(m_width, m_height, 1, 0)));
  }
  m_editFrame = -1;
  m_editing = Image();
  saveFrame(k);
  saveAnchors();
  Q_EMIT maskChanged(k);
  Q_EMIT undoStateChanged();
}

void Session::paintStroke(int64_t k, const std::vector<QPointF>& points, double radius, uint8_t id) {
  if (points.empty()) return;
  beginEdit(k);
  Image& m = editableMask(k);
  const double r2 = radius * radius;
  auto dab = [&](double cx, double cy) {
    const int x0 = std::max(0, int(std::floor(cx - radius))), x1 = std::min(m.width - 1, int(std::ceil(cx + radius)));
    const int y0 = std::max(0, int(std::floor(cy - radius))), y1 = std::min(m.height - 1, int(std::ceil(cy + radius)));
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) {
        const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        if (dx * dx + dy * dy <= r2) *m.px(x, y) = id;
      }
  };
  dab(points[0].x(), points[0].y());
  for (size_t i = 1; i < points.size(); ++i) {
    // Dabs every half radius along the segment so fast strokes stay continuous.
    const QPointF a = points[i - 1], b = points[i];
    const double len = std::hypot(b.x() - a.x(), b.y() - a.y());
    const int steps = std::max(1, int(std::ceil(len / std::max(0.5, radius / 2))));
    for (int s = 1; s <= steps; ++s) {
      const double t = double(s) / steps;
      dab(a.x() + t * (b.x() - a.x()), a.y() + t * (b.y() - a.y()));
    }
  }
  finishEdit(k);
}

void Session::fillPolygon(int64_t k, const std::vector<QPointF>& points, uint8_t id) {
  if (points.size() < 3) return;
  beginEdit(k);
  std::vector<std::pair<double, double>> pts;
  for (const auto& p : points) pts.emplace_back(p.x(), p.y());
  mask_fill_polygon(editableMask(k), pts, id);
  finishEdit(k);
}

void Session::floodFill(int64_t k, QPointF seed, uint8_t id) {
  const int sx = int(seed.x()), sy = int(seed.y());
  if (sx < 0 || sy < 0 || sx >= m_width || sy >= m_height) return;
  beginEdit(k);
  Image& m = editableMask(k);
  const uint8_t from = *m.px(sx, sy);
  if (from != id) {
    std::vector<std::pair<int, int>> stack{{sx, sy}};
    while (!stack.empty()) {
      auto [x, y] = stack.back();
      stack.pop_back();
      if (x < 0 || y < 0 || x >= m.width || y >= m.height || *m.px(x, y) != from) continue;
      *m.px(x, y) = id;
      stack.insert(stack.end(), {{x + 1, y}, {x - 1, y}, {x, y + 1}, {x, y - 1}});
    }
  }
  finishEdit(k);
}

void Session::setObjectRegion(int64_t k, const Image& base, const Image& region, uint8_t id) {
  if (base.width != m_width || base.height != m_height || region.width != m_width || region.height != m_height ||
      base.channels != 1 || region.channels != 1) {
    throw Error("object region of another size than the video's frames");
  }
  beginEdit(k);
  Image m = base;
  for (size_t i = 0; i < m.data.size(); ++i) {
    if (m.data[i] == id) m.data[i] = 0;
    if (region.data[i] && m.data[i] == 0) m.data[i] = id;
  }
  editableMask(k) = std::move(m);
  finishEdit(k);
}

void Session::importMask(int64_t k, const QString& png) {
  Image m = mask_read(png.toStdString());
  if (m.width != m_width || m.height != m_height) {
    throw Error("mask '" + png.toStdString() + "' is " + std::to_string(m.width) + "x" + std::to_string(m.height) +
                " but the video is " + std::to_string(m_width) + "x" + std::to_string(m_height));
  }
  beginEdit(k);
  editableMask(k) = std::move(m);
  finishEdit(k);
}

void Session::clearFrame(int64_t k) {
  beginEdit(k);
  editableMask(k) = Image(m_width, m_height, 1, 0);
  finishEdit(k);
}

void Session::undo() { swapEdit(m_undo, m_redo); }
void Session::redo() { swapEdit(m_redo, m_undo); }

void Session::swapEdit(std::deque<Edit>& from, std::deque<Edit>& to) {
  if (from.empty()) return;
  Edit e = std::move(from.back());
  from.pop_back();
  to.push_back(Edit{e.frame, hasMask(e.frame), isAnchor(e.frame), m_corrected.count(e.frame) > 0,
                    hasMask(e.frame) ? m_masks.at(e.frame) : MaskRle()});
  if (e.had_mask) m_masks[e.frame] = e.mask; else m_masks.erase(e.frame);
  if (e.was_anchor) m_anchors.insert(e.frame); else m_anchors.erase(e.frame);
  if (e.was_corrected) m_corrected.insert(e.frame); else m_corrected.erase(e.frame);
  saveFrame(e.frame);
  saveAnchors();
  Q_EMIT maskChanged(e.frame);
  Q_EMIT undoStateChanged();
}

int Session::addObject() {
  int id = 1;
  while (std::find(m_objects.begin(), m_objects.end(), id) != m_objects.end()) ++id;
  if (id > 254) throw Error("at most 254 objects");
  m_objects.push_back(id);
  std::sort(m_objects.begin(), m_objects.end());
  saveAnchors();
  Q_EMIT objectsChanged();
  return id;
}

void Session::removeObject(int id) {
  m_objects.erase(std::remove(m_objects.begin(), m_objects.end(), id), m_objects.end());
  if (!m_softDir.isEmpty()) {
    std::error_code ec;
    fs::remove_all(fs::path(m_softDir.toStdString()) / objectFolder(id), ec);
  }
  for (auto& [k, packed] : m_masks) {
    Image m = packed.decode();
    bool changed = false;
    for (auto& v : m.data) {
      if (v == id) { v = 0; changed = true; }
    }
    if (changed) {
      packed = MaskRle(m);
      saveFrame(k);
      Q_EMIT maskChanged(k);
    }
  }
  saveAnchors();
  Q_EMIT objectsChanged();
}

void Session::noteObjects(const Image& mask) {
  bool seen[256] = {};
  for (uint8_t v : mask.data) seen[v] = true;
  bool added = false;
  for (int id = 1; id < 255; ++id) {
    if (seen[id] && std::find(m_objects.begin(), m_objects.end(), id) == m_objects.end()) {
      m_objects.push_back(id);
      added = true;
    }
  }
  if (added) {
    std::sort(m_objects.begin(), m_objects.end());
    Q_EMIT objectsChanged();
  }
}

void Session::setPropagated(int64_t k, const Image& mask, const std::shared_ptr<const SoftMasks>& soft) {
  if (isAnchor(k) || k < 0 || k >= m_frames) return;
  m_masks[k] = MaskRle(mask);
  noteObjects(mask);
  saveFrame(k);
  storeSoft(k, soft.get());
  Q_EMIT maskChanged(k);
}

// ---- soft masks ----

void Session::useSoftFolder() {
  m_scratchSoft.reset();
  if (!m_workspace.isEmpty()) {
    m_softDir = QDir(m_workspace).filePath("soft");
    return;
  }
  m_scratchSoft = std::make_unique<QTemporaryDir>();
  m_softDir = m_scratchSoft->isValid() ? m_scratchSoft->path() : QString();
}

void Session::dropSoft(int64_t k) {
  if (!m_soft.erase(k)) return;
  std::error_code ec;
  const std::string name = frameName(k) + ".png";
  for (const auto& e : fs::directory_iterator(m_softDir.toStdString(), ec)) fs::remove(e.path() / name, ec);
}

void Session::storeSoft(int64_t k, const SoftMasks* soft) {
  dropSoft(k);   // a new propagation of the frame replaces all of them
  if (soft == nullptr || m_softDir.isEmpty()) return;
  const fs::path root = m_softDir.toStdString();
  const std::string name = frameName(k) + ".png";
  m_soft.insert(k);   // before writing: a failure part way removes what was written
  try {
    for (size_t i = 0; i < soft->size(); ++i) {
      const fs::path dir = root / objectFolder(int(i) + 1);
      fs::create_directories(dir);
      file_write_atomic((dir / name).string(), (*soft)[i]);
    }
  } catch (const std::exception& e) {
    dropSoft(k);   // the export falls back to the mask for this frame
    if (!m_saveFailing) Q_EMIT saveFailed(QString::fromStdString(error_message(e)));
  }
}

void Session::loadSoft() {
  std::error_code ec;
  if (m_workspace.isEmpty() || !fs::is_directory(m_softDir.toStdString(), ec)) return;
  // Only propagated frames keep soft masks (files of edited frames were removed with the edit).
  std::map<std::string, int64_t> propagated;
  for (const auto& [k, m] : m_masks) {
    if (!isAnchor(k)) propagated.emplace(frameName(k) + ".png", k);
  }
  for (const auto& object : fs::directory_iterator(m_softDir.toStdString(), ec)) {
    for (const auto& f : fs::directory_iterator(object.path(), ec)) {
      auto it = propagated.find(f.path().filename().string());
      if (it != propagated.end()) m_soft.insert(it->second);
    }
  }
}

std::pair<int64_t, int64_t> Session::propagationRange(int64_t from, bool forward) const {
  if (forward) {
    auto next = m_anchors.upper_bound(from);
    return {from + 1, next == m_anchors.end() ? m_frames - 1 : *next - 1};
  }
  auto it = m_anchors.lower_bound(from);
  const int64_t prev = it == m_anchors.begin() ? -1 : *std::prev(it);
  return {from - 1, prev + 1};
}

// ---- workspace ----

void Session::saveFrame(int64_t k) {
  m_dirty.insert(k);
  flush();
}

void Session::saveAnchors() {
  m_anchorsDirty = true;
  flush();
}

void Session::flush() {
  if (m_workspace.isEmpty()) return;
  try {
    while (!m_dirty.empty()) {
      writeFrame(*m_dirty.begin());
      m_dirty.erase(m_dirty.begin());
    }
    if (m_anchorsDirty) writeAnchors();
    m_anchorsDirty = false;
    m_saveFailing = false;
  } catch (const std::exception& e) {
    if (!m_saveFailing) Q_EMIT saveFailed(QString::fromStdString(error_message(e)));
    m_saveFailing = true;
  }
}

void Session::writeFrame(int64_t k) const {
  const auto file = fs::path(m_workspace.toStdString()) / "masks" / (frameName(k) + ".png");
  auto it = m_masks.find(k);
  if (it == m_masks.end()) {
    std::error_code ec;
    fs::remove(file, ec);
    return;
  }
  mask_write(file.string(), it->second.decode());
}

void Session::writeAnchors() const {
  nlohmann::json j = {{"video", m_path.toStdString()},
                      {"video_absolute", QFileInfo(m_path).absoluteFilePath().toStdString()},
                      {"anchors", std::vector<int64_t>(m_anchors.begin(), m_anchors.end())},
                      {"corrected", std::vector<int64_t>(m_corrected.begin(), m_corrected.end())},
                      {"objects", m_objects}};
  file_write_atomic((fs::path(m_workspace.toStdString()) / kWorkspaceFile).string(), j.dump(2));
}

void Session::saveWorkspaceAs(const QString& dir) {
  if (!isOpen()) throw Error("no video is open");
  const fs::path target = dir.toStdString();
  const fs::path file = target / kWorkspaceFile;
  if (fs::exists(file) && !namesVideo(readWorkspaceFile(file), m_path)) {
    throw Error("'" + target.string() + "' holds the workspace of another video; choose an empty folder");
  }
  dir_ensure_writable((target / "masks").string());
  const QString previous = m_workspace;
  m_workspace = dir;
  try {
    std::set<std::string> ours;
    for (const auto& [k, m] : m_masks) ours.insert(frameName(k) + ".png");
    for (const auto& e : fs::directory_iterator(target / "masks")) {   // stale masks of frames now empty
      if (e.path().extension() == ".png" && !ours.count(e.path().filename().string())) fs::remove(e.path());
    }
    for (const auto& [k, m] : m_masks) writeFrame(k);
    writeAnchors();
    copySoft(target / "soft");
  } catch (...) {
    m_workspace = previous;
    throw;
  }
  m_dirty.clear();
  m_anchorsDirty = false;
  m_saveFailing = false;
  m_scratchSoft.reset();
  m_softDir = QString::fromStdString((target / "soft").string());
}

void Session::copySoft(const fs::path& to) const {
  const fs::path from = m_softDir.toStdString();
  std::error_code ec;
  if (!m_softDir.isEmpty() && fs::equivalent(from, to, ec)) return;   // saved into its own workspace again
  fs::remove_all(to);
  for (int64_t k : m_soft) {
    const std::string name = frameName(k) + ".png";
    for (const auto& object : fs::directory_iterator(from)) {
      if (!fs::exists(object.path() / name)) continue;
      fs::create_directories(to / object.path().filename());
      fs::copy_file(object.path() / name, to / object.path().filename() / name, fs::copy_options::overwrite_existing);
    }
  }
}

void Session::loadWorkspace() {
  const fs::path dir = m_workspace.toStdString();
  const fs::path file = dir / kWorkspaceFile;
  if (!fs::exists(file)) return;
  const auto j = readWorkspaceFile(file);
  if (!namesVideo(j, m_path)) {
    throw Error("workspace '" + dir.string() + "' belongs to another video (" + j.value("video", std::string("?")) + ")");
  }
  // The stored objects first: objects found in the masks are added to them.
  m_objects = j.value("objects", std::vector<int>());
  for (int64_t k = 0; k < m_frames; ++k) {
    const auto png = dir / "masks" / (frameName(k) + ".png");
    if (!fs::exists(png)) continue;
    Image m = mask_read(png.string());
    if (m.width == m_width && m.height == m_height) {
      noteObjects(m);
      m_masks[k] = MaskRle(m);
    }
  }
  for (int64_t k : j.value("anchors", std::vector<int64_t>())) {
    if (m_masks.count(k)) m_anchors.insert(k);
  }
  for (int64_t k : j.value("corrected", std::vector<int64_t>())) {
    if (m_anchors.count(k)) m_corrected.insert(k);
  }
}

// ---- export ----

void Session::exportPalettePngs(const QString& dir) const {
  StagedFolder out(dir.toStdString());
  for (int64_t k = 0; k < m_frames; ++k) {
    mask_write((fs::path(out.path()) / (frameName(k) + ".png")).string(), mask(k));
  }
  out.commit();
}

void Session::exportBinaryMasks(const QString& dir) const {
  StagedFolder out(dir.toStdString());
  for (int id : m_objects) {
    const fs::path sub = fs::path(out.path()) / objectFolder(id);
    fs::create_directories(sub);
    for (int64_t k = 0; k < m_frames; ++k) image_write_png((sub / (frameName(k) + ".png")).string(), objectMask(mask(k), id));
  }
  out.commit();
}

void Session::exportSoftMasks(const QString& dir) const {
  StagedFolder out(dir.toStdString());
  const fs::path kept = m_softDir.toStdString();
  for (int id : m_objects) {
    const fs::path sub = fs::path(out.path()) / objectFolder(id);
    fs::create_directories(sub);
    for (int64_t k = 0; k < m_frames; ++k) {
      const std::string name = frameName(k) + ".png";
      const fs::path soft = kept / objectFolder(id) / name;
      std::error_code ec;
      // No file for a kept frame: the object was not in that propagation (probability 0, as its mask says).
      if (m_soft.count(k) && fs::is_regular_file(soft, ec)) fs::copy_file(soft, sub / name);
      else image_write_png((sub / name).string(), objectMask(mask(k), id));
    }
  }
  out.commit();
}

void Session::exportCoco(const QString& file) const {
  int objects = 0;
  for (int id : m_objects) objects = std::max(objects, id);
  std::vector<CocoFrame> frames;
  for (int64_t k = 0; k < m_frames; ++k) frames.push_back(coco_frame(k, frameName(k), mask(k), objects));
  file_write_atomic(file.toStdString(), coco_dataset(frames, objects, "CorrTrack Studio masks of " + m_path.toStdString()).dump() + "\n");
}

void Session::exportOverlayVideo(const QString& file, OverlayMode mode, float alpha) {
  VideoWriter w(file.toStdString(), m_width, m_height, m_fps);
  for (int64_t k = 0; k < m_frames; ++k) w.write(overlay_render(frame(k), mask(k), mode, alpha));
  w.close();
}

}  // namespace corrtrack::ui
