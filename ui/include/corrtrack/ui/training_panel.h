// The "Training" dock: a video method (from the method registry), data, run folder and steps;
// the run goes through a TrainingRunner (a child process) and its loss curve is drawn live.
#pragma once

#include "corrtrack/ui/training_runner.h"

#include <QWidget>

class QChartView;
class QComboBox;
class QLabel;
class QLineEdit;
class QLineSeries;
class QPushButton;
class QSpinBox;

namespace corrtrack::ui {

class TrainingPanel : public QWidget {
  Q_OBJECT
 public:
  explicit TrainingPanel(QWidget* parent = nullptr);
  // Data used when the Data field is empty (the open video).
  void setDefaultData(const QString& path) { m_defaultData = path; }
  TrainingRunner& runner() { return m_runner; }

 Q_SIGNALS:
  void useCheckpointRequested(QString path);
  void message(QString text, bool error);

 private:
  void start();
  void showLossCurve(const QList<QPointF>& points);
  QString checkpointPath() const;
  TrainingRunner m_runner;
  QString m_defaultData;
  QComboBox* m_method = nullptr;
  QLineEdit* m_data = nullptr;
  QLineEdit* m_out = nullptr;
  QSpinBox* m_steps = nullptr;
  QComboBox* m_precision = nullptr;   // --precision: auto | fp32 | bf16
  QPushButton* m_start = nullptr;
  QPushButton* m_cancel = nullptr;
  QPushButton* m_use = nullptr;
  QLabel* m_status = nullptr;
  QLineSeries* m_loss = nullptr;
  QChartView* m_chart = nullptr;
};

}  // namespace corrtrack::ui
