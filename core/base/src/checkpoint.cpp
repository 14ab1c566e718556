// Checkpoints: torch archives holding a module under "model" and JSON metadata, saved atomically.
#include "corrtrack/checkpoint_info.h"

#include <cstdio>
#include <map>
#include <sstream>
#include <filesystem>

namespace corrtrack {

namespace {
constexpr const char* kMetaKey = "corrtrack_metadata";
constexpr const char* kModelKey = "model";

torch::serialize::InputArchive open_archive(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error("checkpoint '" + path + "' does not exist");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, torch::Device(torch::kCPU));  // GPU-trained checkpoints load on CPU-only builds
  } catch (const c10::Error&) {
    throw Error("cannot read checkpoint '" + path + "': not a CorrTrack checkpoint, or the file is damaged");
  }
  return archive;
}
// Every parameter's and buffer's shape, by name.
std::map<std::string, std::vector<int64_t>> tensor_shapes(const torch::nn::Module& module) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : module.named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  for (const auto& b : module.named_buffers()) shapes[b.key()] = b.value().sizes().vec();
  return shapes;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string t = "[";
  for (size_t i = 0; i < shape.size(); ++i) t += (i ? ", " : "") + std::to_string(shape[i]);
  return t + "]";
}

// "" when every tensor kept its shape; else which one changed, from what to what.
std::string first_shape_change(const std::map<std::string, std::vector<int64_t>>& expected,
                               const std::map<std::string, std::vector<int64_t>>& loaded) {
  for (const auto& [name, shape] : expected) {
    const auto it = loaded.find(name);
    if (it != loaded.end() && it->second != shape) {
      return "'" + name + "' is " + shape_text(it->second) + " in the checkpoint, the model expects " + shape_text(shape);
    }
  }
  return "";
}
}  // namespace

void checkpoint_save(const std::string& path, torch::nn::Module& module, const std::string& metadata_json) {
  checkpoint_save(path, module, metadata_json, {});
}

void checkpoint_save(const std::string& path, torch::nn::Module& module, const std::string& metadata_json,
                     const std::vector<std::pair<std::string, torch::serialize::OutputArchive*>>& extras) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model;
  module.save(model);
  archive.write(kModelKey, model);
  archive.write(kMetaKey, c10::IValue(metadata_json));
  for (const auto& [key, extra] : extras) archive.write(key, *extra);
  // Serialised in memory first: LibTorch's file writer reports a failed write (a full disk) from
  // a destructor, which terminates the process. Our writer makes it an ordinary error, removes
  // the temporary file and leaves the previous checkpoint as it was.
  std::ostringstream bytes;
  try {
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    throw Error("cannot write checkpoint '" + path + "': " + e.what_without_backtrace());
  }
  file_write_atomic(path, bytes.str());
}

std::string checkpoint_metadata(const std::string& path) {
  auto archive = open_archive(path);
  c10::IValue meta;
  if (!archive.try_read(kMetaKey, meta) || !meta.isString()) {
    throw Error("cannot read checkpoint '" + path + "': it has no CorrTrack metadata");
  }
  return meta.toStringRef();
}

bool checkpoint_read_archive(const std::string& path, const std::string& key, torch::serialize::InputArchive& out) {
  auto archive = open_archive(path);
  return archive.try_read(key, out);
}

void checkpoint_load(const std::string& path, torch::nn::Module& module, const std::string& submodule) {
  auto archive = open_archive(path);
  torch::serialize::InputArchive model;
  if (!archive.try_read(kModelKey, model)) throw Error("cannot read checkpoint '" + path + "': it holds no model");
  torch::serialize::InputArchive child;
  if (!submodule.empty() && !model.try_read(submodule, child)) {
    throw Error("checkpoint '" + path + "' has no '" + submodule + "' module");
  }
  // Exported models may store float16 weights: Module::load copies storage without converting,
  // so the module is put in float16 first and brought back to float32 after loading.
  c10::IValue meta;
  CheckpointInfo info;
  if (archive.try_read(kMetaKey, meta) && meta.isString()) info = checkpoint_info_from_json(meta.toStringRef(), path);
  const bool half = info.weights == "float16";
  auto convert = [&module](torch::ScalarType from, torch::ScalarType to) {
    torch::NoGradGuard ng;
    for (auto& p : module.parameters()) if (p.scalar_type() == from) p.set_data(p.to(to));
    for (auto& b : module.buffers()) if (b.scalar_type() == from) b.set_data(b.to(to));
  };
  if (half) convert(torch::kFloat, torch::kHalf);
  // Module::load replaces each tensor by the stored one, shape included: a stored Linear(16, 5)
  // loads into a Linear(16, 4) without complaint. The shapes are compared afterwards.
  const auto shapes_before = tensor_shapes(module);
  try {
    module.load(submodule.empty() ? model : child);
  } catch (const c10::Error& e) {
    throw Error("checkpoint '" + path + "' does not match the model architecture: " + e.what_without_backtrace());
  }
  if (const std::string wrong = first_shape_change(shapes_before, tensor_shapes(module)); !wrong.empty()) {
    throw Error("checkpoint '" + path + "' does not match the model architecture: " + wrong);
  }
  // Verified on the weights as stored (before float16 comes back to float32).
  const auto digest = info.digests.find(submodule);
  if (digest != info.digests.end() && digest->second != module_digest(module)) {
    throw Error("checkpoint '" + path + "' is damaged: its weights do not match the checksum in its metadata");
  }
  if (half) convert(torch::kHalf, torch::kFloat);
}
}  // namespace corrtrack
