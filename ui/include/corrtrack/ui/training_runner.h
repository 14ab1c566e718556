// Training from the Studio: `corrtrack train` as a child process (so a crash or a cancel never
// takes the window with it), and its loss curve read from RUN/metrics.jsonl while it runs.
#pragma once

#include <QList>
#include <QObject>
#include <QPointF>
#include <QProcess>
#include <QStringList>
#include <QTimer>

namespace corrtrack::ui {

// (step, loss) of every complete line of a metrics.jsonl file (torn or foreign lines skipped).
QList<QPointF> readLossCurve(const QString& metricsPath);

class TrainingRunner : public QObject {
  Q_OBJECT
 public:
  explicit TrainingRunner(QObject* parent = nullptr);
  ~TrainingRunner() override;  // terminates a running child
  // Starts `exe train ...` writing into `out` (resumed when it already holds a run); false and
  // `error` set when the process cannot start.
  bool start(const QString& exe, const QStringList& trainArgs, const QString& out, QString* error);
  void cancel();
  bool running() const { return m_process.state() != QProcess::NotRunning; }

 Q_SIGNALS:
  void lossCurve(QList<QPointF> points);   // whenever metrics.jsonl has new lines
  void stderrLine(QString line);           // the child's progress and error lines
  void finished(bool ok, QString message);

 private:
  void poll();
  QProcess m_process;
  QTimer m_timer;
  QString m_metrics;
  qsizetype m_lines = 0;
};

}  // namespace corrtrack::ui
