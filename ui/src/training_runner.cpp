// The Studio's training child process and its metrics.
#include "corrtrack/ui/training_runner.h"

#include <nlohmann/json.hpp>

#include <QDir>
#include <QFileInfo>

#include <fstream>

namespace corrtrack::ui {

QList<QPointF> readLossCurve(const QString& metricsPath) {
  std::ifstream in(metricsPath.toStdString());
  std::string line;
  QList<QPointF> points;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("loss") || !j.contains("step")) continue;
    if (!j["loss"].is_number() || !j["step"].is_number()) continue;
    points.append(QPointF(j["step"].get<double>(), j["loss"].get<double>()));
  }
  return points;
}

TrainingRunner::TrainingRunner(QObject* parent) : QObject(parent) {
  connect(&m_timer, &QTimer::timeout, this, &TrainingRunner::poll);
  connect(&m_process, &QProcess::readyReadStandardError, this, [this] {
    const QString text = QString::fromUtf8(m_process.readAllStandardError()).trimmed();
    if (!text.isEmpty()) Q_EMIT stderrLine(text.split('\n').last());
  });
  connect(&m_process, &QProcess::finished, this, [this](int code, QProcess::ExitStatus status) {
    poll();
    m_timer.stop();
    const bool ok = status == QProcess::NormalExit && code == 0;
    Q_EMIT finished(ok, ok ? tr("finished") : tr("stopped (exit code %1)").arg(code));
  });
}

TrainingRunner::~TrainingRunner() {
  if (running()) {
    m_process.terminate();
    m_process.waitForFinished(3000);
  }
}

bool TrainingRunner::start(const QString& exe, const QStringList& trainArgs, const QString& out, QString* error) {
  if (running()) {
    if (error) *error = tr("A training run is already going on.");
    return false;
  }
  QStringList args = QStringList{"train"} + trainArgs + QStringList{"--out", out};
  if (QFileInfo::exists(QDir(out).filePath("last.ckpt"))) args << "--resume";
  m_metrics = QDir(out).filePath("metrics.jsonl");
  m_lines = 0;
  m_process.start(exe, args);
  if (!m_process.waitForStarted(5000)) {
    if (error) *error = tr("Could not start %1").arg(exe);
    return false;
  }
  m_timer.start(1000);
  return true;
}

void TrainingRunner::cancel() {
  if (running()) m_process.terminate();
}

void TrainingRunner::poll() {
  const auto points = readLossCurve(m_metrics);
  if (points.size() == m_lines || points.isEmpty()) return;
  m_lines = points.size();
  Q_EMIT lossCurve(points);
}

}  // namespace corrtrack::ui
