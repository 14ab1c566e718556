// Training curves from metrics.jsonl: tolerant reading (a run killed mid-line, metrics logged only
// on some lines) and one chart panel per metric with every run overlaid.
#include "corrtrack/core.h"
#include "corrtrack/inspection.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

namespace corrtrack {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Axes, not curves: the step is every panel's x, the wall time the last panel's.
const std::set<std::string> kAxes{"step", "elapsed_s"};
// The loop's own figures, drawn after the method's metrics.
const std::vector<std::string> kLoopMetrics{"lr", "steps_per_s", "samples_per_s"};

ChartSeries series_of(const MetricsLog& run, const std::string& x_key, const std::string& y_key, double x_div = 1.0) {
  ChartSeries s;
  s.label = run.run;
  for (const auto& row : run.rows) {
    const auto x = row.find(x_key), y = row.find(y_key);
    if (x == row.end() || y == row.end()) continue;
    s.x.push_back(x->second / x_div);
    s.y.push_back(y->second);
  }
  return s;
}

}  // namespace

MetricsLog metrics_read(const std::string& run_or_file) {
  const fs::path given(run_or_file);
  const fs::path file = fs::is_directory(given) ? given / "metrics.jsonl" : given;
  std::error_code ec;
  if (!fs::exists(file, ec)) throw Error("cannot read '" + file.string() + "': no such file (give a training run folder or its metrics.jsonl)");
  // A FIFO or a device would block or never end: only regular files are read.
  if (!fs::is_regular_file(file, ec)) throw Error("cannot read '" + file.string() + "': not a regular file");
  std::ifstream in(file);
  if (!in) throw Error("cannot read '" + file.string() + "': permission denied or unreadable");
  MetricsLog log;
  // The legend label: the run folder's name, or a metrics file's own name when it has one.
  // (absolute before parent_path: a bare file name has an empty parent, which absolute() refuses)
  const fs::path folder = fs::is_directory(given) ? fs::absolute(given).lexically_normal() : fs::absolute(file).lexically_normal().parent_path();
  log.run = file.stem() != "metrics" ? file.stem().string() : folder.filename().string();
  if (log.run.empty()) log.run = folder.parent_path().filename().string();   // "runs/a/" ends in a separator
  int lineno = 0;
  for (std::string line; std::getline(in, line);) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {
      ++log.skipped;
      log_get("tracking")->warn("{}: line {} is not a JSON object (cut short?); skipped", file.string(), lineno);
      continue;
    }
    std::map<std::string, double> row;
    for (const auto& [k, v] : j.items())
      if (v.is_number() && std::isfinite(v.get<double>())) row[k] = v.get<double>();
    if (row.count("step")) log.rows.push_back(std::move(row));
    else ++log.skipped;
  }
  if (log.rows.empty()) throw Error("'" + file.string() + "' holds no readable metrics line");
  return log;
}

std::vector<ChartPanel> training_curves(const std::vector<MetricsLog>& runs, bool against_time) {
  // Loss (when a run logged one), the method's metrics (by name), then the loop's learning rate
  // and throughput.
  std::vector<std::string> names;
  if (std::any_of(runs.begin(), runs.end(), [](const MetricsLog& r) {
        return std::any_of(r.rows.begin(), r.rows.end(), [](const auto& row) { return row.count("loss") > 0; });
      }))
    names.push_back("loss");
  for (const auto& r : runs)
    for (const auto& row : r.rows)
      for (const auto& [k, v] : row) {
        const bool loop = std::find(kLoopMetrics.begin(), kLoopMetrics.end(), k) != kLoopMetrics.end();
        if (!kAxes.count(k) && !loop && std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
      }
  for (const auto& k : kLoopMetrics)
    for (const auto& r : runs)
      if (std::any_of(r.rows.begin(), r.rows.end(), [&](const auto& row) { return row.count(k) > 0; }) &&
          std::find(names.begin(), names.end(), k) == names.end())
        names.push_back(k);
  std::vector<ChartPanel> panels;
  for (const auto& name : names) {
    ChartPanel p{name, against_time ? "minutes" : "step", "", {}};
    for (const auto& r : runs) p.series.push_back(against_time ? series_of(r, "elapsed_s", name, 60.0) : series_of(r, "step", name));
    panels.push_back(std::move(p));
  }
  if (against_time || names.empty() || names[0] != "loss") return panels;
  ChartPanel wall{"loss against wall time", "minutes", "", {}};
  for (const auto& r : runs) wall.series.push_back(series_of(r, "elapsed_s", "loss", 60.0));
  panels.push_back(std::move(wall));
  return panels;
}

void training_curves_write(const std::vector<std::string>& runs, const std::string& out, bool against_time) {
  if (runs.empty()) throw Error("give at least one training run to plot");
  std::vector<MetricsLog> logs;
  for (const auto& r : runs) logs.push_back(metrics_read(r));
  // Runs with the same folder name (a/run, b/run) are told apart by their paths.
  std::multiset<std::string> names;
  for (const auto& l : logs) names.insert(l.run);
  for (size_t i = 0; i < logs.size(); ++i)
    if (names.count(logs[i].run) > 1) logs[i].run = runs[i];
  const auto panels = training_curves(logs, against_time);
  chart_write(out, panels, panels.size() > 4 ? 3 : 2);
}

}  // namespace corrtrack
