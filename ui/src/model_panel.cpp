// The "Model and propagation" dock.
#include "corrtrack/ui/model_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QTimer>
#include <QVBoxLayout>

#include <optional>

namespace corrtrack::ui {

namespace {

enum ModelItem { kDefault = 0, kPixels = 1, kRandom = 2, kCheckpoint = 3 };

QDoubleSpinBox* doubleSpin(QWidget* parent, double lo, double hi, double step, int decimals = 2) {
  auto* s = new QDoubleSpinBox(parent);
  s->setRange(lo, hi);
  s->setSingleStep(step);
  s->setDecimals(decimals);
  return s;
}

QSpinBox* intSpin(QWidget* parent, int lo, int hi) {
  auto* s = new QSpinBox(parent);
  s->setRange(lo, hi);
  return s;
}

}  // namespace

ModelPanel::ModelPanel(QWidget* parent) : QWidget(parent) {
  auto* v = new QVBoxLayout(this);
  auto* form = new QFormLayout();
  m_model = new QComboBox(this);
  m_model->addItems({tr("default (bundled MAST)"), "pixels", "random", tr("checkpoint…")});
  m_model->setToolTip(tr("The encoder whose features propagate the masks: the bundled model, raw pixels, a random ResNet, or a checkpoint file"));
  form->addRow(tr("Features"), m_model);
  m_info = new QLabel(this);
  m_info->setWordWrap(true);
  form->addRow(m_info);
  // "auto" names the device it resolves to; cuda is offered only where there is one.
  m_device = new QComboBox(this);
  const bool cuda = torch::cuda::is_available();
  m_device->addItem(tr("auto (%1)").arg(cuda ? "cuda" : "cpu"), "auto");
  m_device->addItem("cpu", "cpu");
  if (cuda) m_device->addItem("cuda", "cuda");
  m_device->setToolTip(cuda ? tr("Where the model runs") : tr("Where the model runs (no CUDA device: this build or machine has none)"));
  form->addRow(tr("Device"), m_device);
  connect(m_device, &QComboBox::activated, this, [this] { Q_EMIT modelChanged(); });
  // "auto" names what it resolves to on the CPU (CUDA stays float32 under auto).
  m_precision = new QComboBox(this);
  m_precision->addItem(tr("auto (%1)").arg(QString::fromStdString(precision_name(precision_resolve(Precision::Auto, torch::kCPU)))),
                       "auto");
  m_precision->addItem("fp32", "fp32");
  m_precision->addItem("bf16", "bf16");
  m_precision->setToolTip(tr("The encoder's arithmetic: fp32 is exact; bf16 is about twice as fast on CPUs that compute "
                             "it natively (AMX or AVX512-BF16), at a J&F cost of about 0.1 on DAVIS (README: Benchmarks)"));
  form->addRow(tr("Precision"), m_precision);
  connect(m_precision, &QComboBox::activated, this, [this] { Q_EMIT modelChanged(); });
  // A preset fills the engine settings below over the model's recommendation (the command's
  // --protocol); the settings stay editable.
  m_preset = new QComboBox(this);
  m_preset->setObjectName("enginePreset");
  m_preset->addItem(tr("the model's"), QString());
  m_preset->addItem(tr("crw (20 frames, radius 12)"), "crw");
  m_preset->addItem(tr("fast (radius 8: 1.5x faster, -0.45 J&F)"), "fast");
  m_preset->addItem(tr("quality (80 frames, radius 16: +1.0 J&F, 1.6x the time)"), "quality");
  m_preset->addItem(tr("timecycle (8 frames, top-5)"), "timecycle");
  m_preset->addItem(tr("mast (MAST's memory)"), "mast");
  m_preset->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);   // long names must not widen the dock
  m_preset->setMinimumContentsLength(12);
  m_preset->setToolTip(tr("Fills the settings below with a preset (J&F and times measured on DAVIS-2016 val-dev "
                          "with the default model, README: Inference levers)"));
  form->addRow(tr("Preset"), m_preset);
  connect(m_preset, &QComboBox::activated, this, [this] { applyRecommendedSettings(); });
  m_scale = doubleSpin(this, 0.1, 2.0, 0.05);
  m_scale->setToolTip(tr("Frames are scaled by this factor before the encoder (the masks come back at full size)"));
  form->addRow(tr("Internal resolution"), m_scale);
  m_context = intSpin(this, 1, 100);
  m_context->setToolTip(tr("How many preceding frames each frame takes its labels from (besides the first). "
                           "80 with radius 16 (the command's --protocol quality) scores 1.0 J&F more on DAVIS-2016 "
                           "val-dev than 20 with radius 12, in 1.6x the time"));
  form->addRow(tr("Context frames"), m_context);
  m_topk = intSpin(this, 0, 1000);
  m_topk->setSpecialValueText(tr("all keys (mast)"));   // 0: MAST's full softmax
  m_topk->setToolTip(tr("Each pixel takes its label from its k most similar context pixels"));
  form->addRow(tr("Top-k"), m_topk);
  m_radius = doubleSpin(this, 0, 100, 1);
  m_radius->setToolTip(tr("How far (in feature cells) a pixel may have moved from one frame to the next. "
                          "8 instead of 12 (the command's --protocol fast) propagates 1.5x faster for 0.45 J&F less on "
                          "DAVIS-2016 val-dev; 16 takes 1.2x the time for 0.1 more"));
  form->addRow(tr("Radius (cells)"), m_radius);
  m_temperature = doubleSpin(this, 0.001, 10, 0.01, 3);
  m_temperature->setToolTip(tr("Softmax temperature of the affinities: lower is sharper"));
  form->addRow(tr("Temperature"), m_temperature);
  m_refine = intSpin(this, 0, 64);
  m_refine->setObjectName("refineRadius");
  m_refine->setSuffix(tr(" px"));
  m_refine->setSpecialValueText(tr("off"));
  m_refine->setToolTip(tr("Moves the masks' edges onto the frame's colour edges: a guided filter over windows of this "
                          "radius, the frame as guide (the command's --refine). The default model recommends 12: +1.7 J&F on "
                          "DAVIS-2016 val-dev (71.5 against 69.8, measured with its GPU-trained first stage), in about the "
                          "same time (README: Edge refinement)"));
  form->addRow(tr("Refine edges"), m_refine);
  m_flip = new QCheckBox(tr("average with the mirror"), this);
  m_flip->setObjectName("flipFeatures");
  m_flip->setToolTip(tr("Average each frame's features with those of its mirror image (the command's --flip): "
                        "1.4x the time; on DAVIS-2016 val-dev +0.6 J&F with the GPU-trained model, -0.3 with the fine-tuned "
                        "default (72.2 against 72.5): try it per video"));
  form->addRow(tr("Test-time flip"), m_flip);
  m_mode = new QComboBox(this);
  m_mode->addItems({"crw", "mast"});
  m_mode->setToolTip(tr("crw: the CRW/UVC context of recent frames; mast: MAST's long- and short-term memory"));
  form->addRow(tr("Mode"), m_mode);
  m_feedback = new QComboBox(this);
  m_feedback->addItems({tr("auto"), tr("soft"), tr("hard")});
  m_feedback->setToolTip(tr("What predicted frames remember: soft labels (CRW's protocol) or their argmax (MAST's); "
                            "auto: soft in crw mode, hard in mast mode"));
  m_feedbackPower = doubleSpin(this, 0.25, 16, 0.25, 2);
  m_feedbackPower->setObjectName("feedbackPower");
  m_feedbackPower->setPrefix(tr("power "));
  m_feedbackPower->setToolTip(tr("Sharpens the soft labels a predicted frame leaves in memory: each cell's labels to this "
                                 "power, renormalised (1 = as predicted; the command's --feedback-power). The default "
                                 "model recommends 1.5: +0.3 J&F on DAVIS-2016 val-dev at the same speed. Not used "
                                 "with hard feedback"));
  auto* feedbackRow = new QHBoxLayout();   // one row: the dock fits 720 pixels without scrolling
  feedbackRow->addWidget(m_feedback, 1);
  feedbackRow->addWidget(m_feedbackPower);
  form->addRow(tr("Feedback"), feedbackRow);
  m_adapt = intSpin(this, 0, 3600);
  m_adapt->setObjectName("adaptSeconds");
  m_adapt->setSingleStep(30);
  m_adapt->setSuffix(tr(" s"));
  m_adapt->setSpecialValueText(tr("off"));
  m_adapt->setToolTip(tr("Before propagating, fine-tune the model on this video for this many seconds with its own "
                         "training objective and with the anchor's mask, which it learns to find again in warped "
                         "copies of the anchor frame (test-time adaptation; the model file is not changed; reused by "
                         "the next propagations of this video from the same mask). Trained models only; Cancel stops it."));
  form->addRow(tr("Adapt to video"), m_adapt);
  m_memory = new QLabel(this);
  form->addRow(m_memory);
  v->addLayout(form);
  connect(m_model, &QComboBox::activated, this, [this](int i) {
    if (i != kCheckpoint) return useBaseline(i == kDefault ? "default" : m_model->itemText(i));
    const QString f = QFileDialog::getOpenFileName(this, tr("Checkpoint"), QString(), tr("Checkpoints (*.ckpt)"));
    QString error;
    if (f.isEmpty()) return useBaseline("default");
    if (!useCheckpoint(f, &error)) {
      Q_EMIT message(error, true);
      useBaseline("default");
    }
  });
  auto* row = new QHBoxLayout();
  m_backward = new QPushButton(tr("◀ Propagate"), this);
  m_forward = new QPushButton(tr("Propagate ▶"), this);
  m_backward->setToolTip(tr("Propagate from this annotated frame backward to the previous anchor (Ctrl+Left)"));
  m_forward->setToolTip(tr("Propagate from this annotated frame forward to the next anchor or the end (Ctrl+Right)"));
  row->addWidget(m_backward);
  row->addWidget(m_forward);
  v->addLayout(row);
  m_progress = new QProgressBar(this);
  m_progress->setObjectName("propagationProgress");
  m_progress->setValue(0);
  m_rate = new QLabel(this);
  m_rate->setObjectName("propagationRate");
  m_cancel = new QPushButton(tr("Cancel"), this);
  m_cancel->setEnabled(false);
  m_cancel->setToolTip(tr("Stop the propagation; the masks already computed are kept"));
  v->addWidget(m_progress);
  v->addWidget(m_rate);
  v->addWidget(m_cancel);
  connect(m_forward, &QPushButton::clicked, this, [this] { Q_EMIT propagateRequested(true); });
  connect(m_backward, &QPushButton::clicked, this, [this] { Q_EMIT propagateRequested(false); });
  connect(m_cancel, &QPushButton::clicked, this, &ModelPanel::cancelRequested);
  v->addStretch(1);
  auto* memTimer = new QTimer(this);
  connect(memTimer, &QTimer::timeout, this, [this] {
    m_memory->setText(QString("memory: %1 MB").arg(double(current_rss_bytes()) / (1 << 20), 0, 'f', 0));
  });
  memTimer->start(1000);
  useBaseline("default");
}

ModelChoice ModelPanel::choice() const {
  ModelChoice c;
  const int i = m_model->currentIndex();
  c.spec.features = i == kPixels ? "pixels" : i == kRandom ? "random" : "default";
  if (i == kCheckpoint) c.spec.checkpoint = m_checkpoint.toStdString();
  c.config.scale = m_scale->value();
  c.config.context = m_context->value();
  c.config.topk = m_topk->value();
  c.config.radius = m_radius->value();
  c.config.temperature = m_temperature->value();
  c.config.mode = m_mode->currentIndex() == 1 ? PropagationMode::Mast : PropagationMode::Crw;
  c.config.roi_gap = m_roiGap;
  c.config.refine_radius = m_refine->value();
  c.config.refine_eps = m_refineEps;
  c.config.flip = m_flip->isChecked();
  static_assert(int(LabelFeedback::Auto) == 0 && int(LabelFeedback::Soft) == 1 && int(LabelFeedback::Hard) == 2,
                "the feedback combo box lists the values in the enum's order");
  c.config.feedback = static_cast<LabelFeedback>(m_feedback->currentIndex());
  c.config.feedback_power = m_feedbackPower->value();
  c.device = device_parse(m_device->currentData().toString().toStdString());
  c.precision = precision_parse(m_precision->currentData().toString().toStdString());
  c.adaptSeconds = m_adapt->value();
  return c;
}

void ModelPanel::applyRecommendedSettings() {
  PropagationConfig c;
  try {
    const std::string preset = m_preset->currentData().toString().toStdString();
    std::optional<PropagationProtocol> protocol;
    if (!preset.empty()) protocol = propagation_protocol_parse(preset);
    c = propagation_config_resolve(PropagationConfig(), {}, model_hints(choice().spec), protocol);
  } catch (const std::exception& e) {
    Q_EMIT message(QString::fromStdString(error_message(e)), true);
  }
  m_scale->setValue(c.scale);
  m_context->setValue(c.context);
  m_topk->setValue(c.topk);
  m_radius->setValue(c.radius);
  m_temperature->setValue(c.temperature);
  m_mode->setCurrentIndex(c.mode == PropagationMode::Mast ? 1 : 0);
  m_roiGap = c.roi_gap;
  m_refine->setValue(c.refine_radius);
  m_refineEps = c.refine_eps;
  m_feedback->setCurrentIndex(static_cast<int>(c.feedback));
  m_feedbackPower->setValue(c.feedback_power);
}

bool ModelPanel::useCheckpoint(const QString& path, QString* error) {
  try {
    feature_extractor_open(ModelSpec{"default", path.toStdString(), 0});  // loads it once: a broken file is reported now
    m_info->setText(describeCheckpoint(path));
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(error_message(e));
    return false;
  }
  m_checkpoint = path;
  m_model->setCurrentIndex(kCheckpoint);
  m_model->setItemText(kCheckpoint, QFileInfo(path).fileName());
  applyRecommendedSettings();
  Q_EMIT modelChanged();
  return true;
}

void ModelPanel::useBaseline(const QString& features) {
  m_checkpoint.clear();
  m_model->setItemText(kCheckpoint, tr("checkpoint…"));
  m_model->setCurrentIndex(features == "pixels" ? kPixels : features == "random" ? kRandom : kDefault);
  if (features == "default") {
    try {
      m_info->setText(describeCheckpoint(QString::fromStdString(default_model_path())));
    } catch (const std::exception& e) {
      m_info->setText(QString::fromStdString(error_message(e)));
    }
  } else {
    m_info->setText(features == "pixels" ? tr("Lab colour, parameter-free") : tr("randomly initialised ResNet-18 (res3)"));
  }
  applyRecommendedSettings();
  Q_EMIT modelChanged();
}

void ModelPanel::setPropagating(bool running, int total) {
  m_cancel->setEnabled(running);
  m_forward->setEnabled(!running);
  m_backward->setEnabled(!running);
  if (!running) return;
  m_progress->setValue(0);
  m_progress->setMaximum(total);
  m_rate->clear();
}

void ModelPanel::propagationEnded(bool completed) {
  setPropagating(false);
  if (completed) {
    m_progress->setValue(m_progress->maximum());
    return;
  }
  // Cancelled or failed: nothing is running, so no rate or ETA is shown.
  m_progress->setValue(0);
  m_rate->clear();
}

void ModelPanel::showProgress(qint64 done, qint64 total, double fps, double eta) {
  m_progress->setMaximum(int(std::max<qint64>(1, total)));
  m_progress->setValue(int(done));
  m_rate->setText(QString("%1 fps · ETA %2 s").arg(fps, 0, 'f', 2).arg(eta, 0, 'f', 0));
}

void ModelPanel::showAdapting(qint64 steps, double secondsLeft) {
  m_rate->setText(tr("adapting to the video: %1 steps · %2 s left").arg(steps).arg(secondsLeft, 0, 'f', 0));
}

}  // namespace corrtrack::ui
