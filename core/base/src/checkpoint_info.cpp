// The one place where checkpoint metadata keys are spelled: CheckpointInfo <-> JSON, with one
// error form for a missing or malformed key ("checkpoint 'F': key 'K' ...").
#include "corrtrack/checkpoint_info.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace corrtrack {

namespace {

using json = nlohmann::json;
constexpr int kFormat = 1;

// Reads keys of one JSON object, naming the file and the full key path in every error.
class KeyReader {
 public:
  KeyReader(const json& j, std::string file, std::string prefix = "")
      : m_j(j), m_file(std::move(file)), m_prefix(std::move(prefix)) {
    if (!m_j.is_object()) fail("", "is not a JSON object");
  }
  template <class T>
  std::optional<T> optional(const std::string& key) const {
    auto it = m_j.find(key);
    if (it == m_j.end() || it->is_null()) return std::nullopt;
    try {
      return it->get<T>();
    } catch (const json::exception&) {
      fail(key, "has the wrong type (" + it->dump().substr(0, 60) + ")");
    }
  }
  template <class T>
  T required(const std::string& key) const {
    auto v = optional<T>(key);
    if (!v) fail(key, "is missing");
    return *v;
  }
  bool has(const std::string& key) const { return m_j.contains(key) && !m_j.at(key).is_null(); }
  KeyReader child(const std::string& key) const {
    if (!has(key)) fail(key, "is missing");
    return KeyReader(m_j.at(key), m_file, m_prefix + key + ".");
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    const std::string name = (m_prefix + key).empty() ? "metadata" : "key '" + m_prefix + key + "'";
    throw Error("checkpoint '" + m_file + "': " + name + " " + what);
  }

 private:
  const json& m_j;
  std::string m_file, m_prefix;
};

json resnet_to_json(const ResNetConfig& c) {
  return {{"depth", c.depth}, {"in_channels", c.in_channels}, {"stem_stride", c.stem_stride},
          {"max_pool", c.max_pool}, {"strides", c.strides}, {"dilations", c.dilations},
          {"widths", c.widths}, {"num_stages", c.num_stages}, {"reflect_pad", c.reflect_pad},
          {"head_channels", c.head_channels}, {"head_kernel", c.head_kernel}};
}

ResNetConfig resnet_from_json(const KeyReader& r) {
  ResNetConfig c;
  c.depth = r.required<int>("depth");
  c.in_channels = r.required<int>("in_channels");
  c.stem_stride = r.required<int>("stem_stride");
  c.max_pool = r.required<bool>("max_pool");
  c.strides = r.required<std::vector<int>>("strides");
  c.dilations = r.required<std::vector<int>>("dilations");
  c.widths = r.required<std::vector<int>>("widths");
  c.num_stages = r.required<int>("num_stages");
  c.reflect_pad = r.required<bool>("reflect_pad");
  c.head_channels = r.optional<int>("head_channels").value_or(0);
  c.head_kernel = r.optional<int>("head_kernel").value_or(3);  // checkpoints before TimeCycle had only 3x3 heads
  // Every value is hostile: a width of 2e9 would allocate without end, 0 crash a convolution.
  auto in = [](int v, int lo, int hi) { return v >= lo && v <= hi; };
  auto all_in = [&](const std::vector<int>& v, int lo, int hi) {
    return v.size() == 4 && std::all_of(v.begin(), v.end(), [&](int x) { return in(x, lo, hi); });
  };
  if (c.depth != 18 && c.depth != 50) r.fail("depth", "must be 18 or 50");
  if (!in(c.in_channels, 1, 64)) r.fail("in_channels", "must be in [1, 64]");
  if (!in(c.stem_stride, 1, 2)) r.fail("stem_stride", "must be 1 or 2");
  if (!all_in(c.strides, 1, 2)) r.fail("strides", "must be 4 values of 1 or 2");
  if (!all_in(c.dilations, 1, 8)) r.fail("dilations", "must be 4 values in [1, 8]");
  if (!all_in(c.widths, 1, 1024)) r.fail("widths", "must be 4 values in [1, 1024]");
  if (!in(c.num_stages, 1, 4)) r.fail("num_stages", "must be in [1, 4]");
  if (!in(c.head_channels, 0, 2048)) r.fail("head_channels", "must be in [0, 2048]");
  if (c.head_kernel != 1 && c.head_kernel != 3) r.fail("head_kernel", "must be 1 or 3");
  return c;
}

json input_to_json(const InputConvention& in) {
  json j = {{"mean", in.mean}, {"std", in.std}};
  if (!in.colour.empty()) j["colour"] = in.colour;
  if (in.size > 0) j["size"] = in.size;
  return j;
}

InputConvention input_from_json(const KeyReader& r, bool image_method) {
  InputConvention in;
  in.colour = image_method ? r.optional<std::string>("colour").value_or("") : r.required<std::string>("colour");
  in.mean = r.required<std::vector<double>>("mean");
  in.std = r.required<std::vector<double>>("std");
  in.size = r.optional<int>("size").value_or(0);
  if (in.mean.size() != in.std.size()) r.fail("std", "has another length than 'mean'");
  for (double m : in.mean) if (!std::isfinite(m)) r.fail("mean", "holds a value that is not a finite number");
  for (double s : in.std) if (!(s > 0) || !std::isfinite(s)) r.fail("std", "must hold positive numbers");
  return in;
}

template <class T>
void put(json& j, const char* key, const std::optional<T>& v) {
  if (v) j[key] = *v;
}

json hints_to_json(const PropagationHints& p) {
  json j = json::object();
  put(j, "context", p.context);
  put(j, "topk", p.topk);
  put(j, "roi_gap", p.roi_gap);
  put(j, "radius", p.radius);
  put(j, "temperature", p.temperature);
  put(j, "scale", p.scale);
  put(j, "mode", p.mode);
  put(j, "refine", p.refine);
  put(j, "refine_eps", p.refine_eps);
  put(j, "feedback_power", p.feedback_power);
  return j;
}

PropagationHints hints_from_json(const KeyReader& r) {
  PropagationHints p;
  p.context = r.optional<int>("context");
  p.topk = r.optional<int>("topk");
  p.roi_gap = r.optional<int>("roi_gap");
  p.radius = r.optional<double>("radius");
  p.temperature = r.optional<double>("temperature");
  p.scale = r.optional<double>("scale");
  p.mode = r.optional<std::string>("mode");
  p.refine = r.optional<int>("refine");
  p.refine_eps = r.optional<double>("refine_eps");
  p.feedback_power = r.optional<double>("feedback_power");
  return p;
}

// The head is {"module", "classes"}; older checkpoints wrote the module name alone and the
// classes as train.clusters.
ClusterHead cluster_head_from_json(const json& j, const KeyReader& r) {
  if (j.at("cluster_head").is_string()) {
    return {r.required<std::string>("cluster_head"), r.child("train").required<int>("clusters")};
  }
  const auto h = r.child("cluster_head");
  return {h.required<std::string>("module"), h.required<int>("classes")};
}

// Keys that CheckpointInfo types; every other key is kept in `record` as it is.
const std::vector<std::string> kTypedKeys{"format", "method", "kind", "encoder", "image_encoder", "encoder_module",
                                          "input", "step", "weights", "exported_from", "propagation", "cluster_head",
                                          "weights_digest"};

void fnv1a(uint64_t& h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
}

}  // namespace

bool PropagationHints::empty() const {
  return !context && !topk && !roi_gap && !radius && !temperature && !scale && !mode && !refine && !refine_eps &&
         !feedback_power;
}

std::string checkpoint_info_to_json(const CheckpointInfo& info) {
  json j = info.record.is_object() ? info.record : json::object();
  j["format"] = kFormat;
  j["method"] = info.method;
  if (info.image_method) j["kind"] = "image";
  if (info.encoder) j["encoder"] = resnet_to_json(*info.encoder);
  if (!info.image_encoder_json.empty()) j["image_encoder"] = json::parse(info.image_encoder_json);
  if (!info.encoder_module.empty()) j["encoder_module"] = info.encoder_module;
  if (info.input) j["input"] = input_to_json(*info.input);
  j["step"] = info.step;
  j["weights"] = info.weights;
  if (info.exported_from_step) j["exported_from"] = {{"step", *info.exported_from_step}};
  if (!info.propagation.empty()) j["propagation"] = hints_to_json(info.propagation);
  if (info.cluster_head) j["cluster_head"] = {{"module", info.cluster_head->module}, {"classes", info.cluster_head->classes}};
  if (!info.digests.empty()) j["weights_digest"] = info.digests;
  return j.dump();
}

CheckpointInfo checkpoint_info_from_json(const std::string& text, const std::string& file) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) throw Error("checkpoint '" + file + "': metadata is not valid JSON");
  const KeyReader r(j, file);
  CheckpointInfo info;
  info.method = r.required<std::string>("method");
  info.image_method = r.optional<std::string>("kind").value_or("") == "image";
  if (r.has("encoder")) info.encoder = resnet_from_json(r.child("encoder"));
  if (r.has("image_encoder")) info.image_encoder_json = j.at("image_encoder").dump();
  info.encoder_module = r.optional<std::string>("encoder_module").value_or("");
  if (r.has("input")) info.input = input_from_json(r.child("input"), info.image_method);
  info.step = r.optional<int64_t>("step").value_or(0);
  info.weights = r.optional<std::string>("weights").value_or("float32");
  if (info.weights != "float32" && info.weights != "float16") r.fail("weights", "must be float32 or float16");
  if (r.has("exported_from")) info.exported_from_step = r.child("exported_from").optional<int64_t>("step").value_or(0);
  if (r.has("propagation")) info.propagation = hints_from_json(r.child("propagation"));
  if (r.has("cluster_head")) info.cluster_head = cluster_head_from_json(j, r);
  info.digests = r.optional<std::map<std::string, std::string>>("weights_digest").value_or(std::map<std::string, std::string>());
  info.record = j;
  for (const auto& key : kTypedKeys) info.record.erase(key);
  return info;
}

PropagationHints propagation_hints_from_json(const std::string& text, const std::string& what) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(what + " must be a JSON object, got '" + text + "'");
  return hints_from_json(KeyReader(j, what));
}

CheckpointInfo checkpoint_info_read(const std::string& path) {
  return checkpoint_info_from_json(checkpoint_metadata(path), path);
}

namespace {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;

// Each parameter and buffer of a module, by name (sorted), with the hash of its type, shape and
// bytes. The digests of the module and of its children fold these, so every tensor is read once.
std::vector<std::pair<std::string, uint64_t>> tensor_hashes(torch::nn::Module& module) {
  std::vector<std::pair<std::string, uint64_t>> out;
  auto add = [&out](const std::string& name, const torch::Tensor& t) {
    const auto c = t.detach().to(torch::kCPU).contiguous();
    const int64_t type = int64_t(c.scalar_type());
    uint64_t h = kFnvOffset;
    fnv1a(h, &type, sizeof(type));
    for (int64_t s : c.sizes()) fnv1a(h, &s, sizeof(s));
    fnv1a(h, c.data_ptr(), size_t(c.numel()) * c.element_size());
    out.emplace_back(name, h);
  };
  for (const auto& p : module.named_parameters()) add(p.key(), p.value());
  for (const auto& b : module.named_buffers()) add(b.key(), b.value());
  std::sort(out.begin(), out.end());
  return out;
}

// Hex digest of the tensors whose names start with `prefix`, named without it.
std::string digest_fold(const std::vector<std::pair<std::string, uint64_t>>& hashes, const std::string& prefix) {
  uint64_t h = kFnvOffset;
  for (const auto& [name, th] : hashes) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    fnv1a(h, name.data() + prefix.size(), name.size() - prefix.size());
    fnv1a(h, &th, sizeof(th));
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace

std::string module_digest(torch::nn::Module& module) { return digest_fold(tensor_hashes(module), ""); }

void checkpoint_save(const std::string& path, torch::nn::Module& module, const CheckpointInfo& info,
                     const std::vector<std::pair<std::string, torch::serialize::OutputArchive*>>& extras) {
  CheckpointInfo with = info;
  const auto hashes = tensor_hashes(module);
  with.digests = {{"", digest_fold(hashes, "")}};
  for (const auto& child : module.named_children()) with.digests[child.key()] = digest_fold(hashes, child.key() + ".");
  checkpoint_save(path, module, checkpoint_info_to_json(with), extras);
}

}  // namespace corrtrack
