// The "Training" dock.
#include "corrtrack/ui/training_panel.h"

#include "corrtrack/video_methods.h"

#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QPainter>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>
#include <QValueAxis>

namespace corrtrack::ui {

TrainingPanel::TrainingPanel(QWidget* parent) : QWidget(parent) {
  auto* v = new QVBoxLayout(this);
  auto* form = new QFormLayout();
  m_method = new QComboBox(this);
  for (const auto& name : video_method_names()) m_method->addItem(QString::fromStdString(name));
  m_method->setToolTip(tr("The self-supervised objective to train"));
  form->addRow(tr("Method"), m_method);
  m_data = new QLineEdit(this);
  m_data->setPlaceholderText(tr("clip cache, videos or frame folders (default: the open video)"));
  m_data->setToolTip(tr("Training videos: a video, a frame folder, a DAVIS root or a clip cache (by default the open video)"));
  form->addRow(tr("Data"), m_data);
  m_out = new QLineEdit(QDir::home().filePath("corrtrack-runs/run"), this);
  m_out->setToolTip(tr("Where the run writes last.ckpt, metrics.jsonl and curves.png"));
  form->addRow(tr("Run folder"), m_out);
  m_steps = new QSpinBox(this);
  m_steps->setRange(1, 10000000);
  m_steps->setValue(500);
  m_steps->setToolTip(tr("Optimisation steps to train"));
  form->addRow(tr("Steps"), m_steps);
  m_precision = new QComboBox(this);
  m_precision->setObjectName("trainingPrecision");
  m_precision->addItems({"auto", "fp32", "bf16"});
  m_precision->setToolTip(tr("The encoder's arithmetic while training: bf16 takes about 2.4x the steps per second on CPUs "
                             "with AMX/AVX512-BF16 (heads, losses and weights stay fp32); auto picks bf16 on such a CPU"));
  form->addRow(tr("Arithmetic"), m_precision);
  v->addLayout(form);
  auto* row = new QHBoxLayout();
  m_start = new QPushButton(tr("Start training"), this);
  m_cancel = new QPushButton(tr("Cancel"), this);
  m_use = new QPushButton(tr("Use this checkpoint"), this);
  m_start->setToolTip(tr("Run `corrtrack train` as a child process; the loss is plotted as it trains"));
  m_cancel->setToolTip(tr("Stop training (the last checkpoint is kept)"));
  m_use->setToolTip(tr("Propagate with the checkpoint this run wrote"));
  m_cancel->setEnabled(false);
  m_use->setEnabled(false);
  row->addWidget(m_start);
  row->addWidget(m_cancel);
  v->addLayout(row);
  v->addWidget(m_use);
  m_status = new QLabel(this);
  m_status->setWordWrap(true);
  v->addWidget(m_status);
  m_loss = new QLineSeries(this);
  auto* chart = new QChart();
  chart->addSeries(m_loss);
  chart->createDefaultAxes();
  chart->legend()->hide();
  chart->setTitle(tr("training loss"));
  m_chart = new QChartView(chart, this);
  m_chart->setMinimumHeight(220);
  m_chart->setRenderHint(QPainter::Antialiasing);
  v->addWidget(m_chart, 1);
  connect(m_start, &QPushButton::clicked, this, &TrainingPanel::start);
  connect(m_cancel, &QPushButton::clicked, &m_runner, &TrainingRunner::cancel);
  connect(m_use, &QPushButton::clicked, this, [this] { Q_EMIT useCheckpointRequested(checkpointPath()); });
  connect(&m_runner, &TrainingRunner::stderrLine, this, [this](const QString& line) { m_status->setText(line.section("] ", -1)); });
  connect(&m_runner, &TrainingRunner::lossCurve, this, &TrainingPanel::showLossCurve);
  connect(&m_runner, &TrainingRunner::finished, this, [this](bool ok, const QString& message) {
    m_start->setEnabled(true);
    m_cancel->setEnabled(false);
    m_use->setEnabled(QFileInfo::exists(checkpointPath()));
    m_status->setText(ok ? tr("finished: %1").arg(checkpointPath()) : tr("%1; the last checkpoint is kept").arg(message));
  });
}

QString TrainingPanel::checkpointPath() const { return QDir(m_out->text()).filePath("last.ckpt"); }

void TrainingPanel::start() {
  QString data = m_data->text().trimmed();
  if (data.isEmpty()) data = m_defaultData;
  if (data.isEmpty()) return Q_EMIT message(tr("Choose training data (a clip cache, videos or frame folders)."), true);
  const QString out = m_out->text().trimmed();
  const QString exe = QDir(QCoreApplication::applicationDirPath()).filePath("corrtrack");
  if (!QFileInfo::exists(exe)) return Q_EMIT message(tr("The corrtrack command was not found next to the Studio (%1).").arg(exe), true);
  const QStringList args{"--method", m_method->currentText(), "--data", data, "--steps", QString::number(m_steps->value()),
                         "--precision", m_precision->currentText(), "--log-every", "5", "--checkpoint-every", "50"};
  m_loss->clear();
  QString error;
  if (!m_runner.start(exe, args, out, &error)) return Q_EMIT message(error, true);
  m_start->setEnabled(false);
  m_cancel->setEnabled(true);
  m_use->setEnabled(false);
  m_status->setText(tr("starting: corrtrack train %1 --out %2").arg(args.join(' '), out));
}

void TrainingPanel::showLossCurve(const QList<QPointF>& points) {
  double lo = 1e30, hi = -1e30;
  for (const auto& p : points) {
    lo = std::min(lo, p.y());
    hi = std::max(hi, p.y());
  }
  m_loss->replace(points);
  auto* chart = m_chart->chart();
  const auto axesX = chart->axes(Qt::Horizontal), axesY = chart->axes(Qt::Vertical);
  if (!axesX.isEmpty()) axesX[0]->setRange(0, std::max(1.0, points.back().x()));
  if (!axesY.isEmpty()) axesY[0]->setRange(lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9));
}

}  // namespace corrtrack::ui
