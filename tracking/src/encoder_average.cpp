#include "corrtrack/encoder_average.h"

#include "encoder_file.h"

namespace corrtrack {

namespace {

// Throws unless `other` holds the same encoder as `first` (method, input, weight names and shapes).
void check_same_encoder(const std::string& first_path, const CheckpointInfo& first, ResNet& first_net,
                        const std::string& path, const CheckpointInfo& info, ResNet& net) {
  const auto differs = [&](const std::string& what) {
    return Error("checkpoint '" + path + "': its " + what + " differs from that of '" + first_path + "', so the two cannot be averaged");
  };
  if (info.method != first.method) throw differs("method (" + info.method + " vs " + first.method + ")");
  if (info.input->colour != first.input->colour || info.input->mean != first.input->mean || info.input->std != first.input->std) {
    throw differs("input convention");
  }
  const auto want = first_net->named_parameters(), got = net->named_parameters();
  const auto want_b = first_net->named_buffers(), got_b = net->named_buffers();
  if (want.size() != got.size() || want_b.size() != got_b.size()) throw differs("architecture");
  for (const auto& [items, other] : {std::pair{&want, &got}, std::pair{&want_b, &got_b}}) {
    for (const auto& w : *items) {
      const auto* g = other->find(w.key());
      if (!g || g->sizes() != w.value().sizes()) throw differs("weight '" + w.key() + "'");
    }
  }
}

}  // namespace

void feature_encoder_average(const std::vector<std::string>& checkpoints, const std::string& out, bool half,
                             const PropagationHints& hints) {
  if (checkpoints.empty()) throw Error("averaging encoders needs at least one checkpoint");
  CheckpointInfo first = checkpoint_info_read(checkpoints[0]);
  ResNet sum = detail::encoder_load(checkpoints[0], first);
  nlohmann::json sources = nlohmann::json::array();
  sources.push_back({{"checkpoint", checkpoints[0]}, {"step", first.step}});
  torch::NoGradGuard ng;
  for (size_t i = 1; i < checkpoints.size(); ++i) {
    const CheckpointInfo info = checkpoint_info_read(checkpoints[i]);
    ResNet net = detail::encoder_load(checkpoints[i], info);
    check_same_encoder(checkpoints[0], first, sum, checkpoints[i], info, net);
    const auto add = net->named_parameters();
    for (auto& p : sum->named_parameters()) p.value().add_(add[p.key()]);
    const auto add_b = net->named_buffers();
    for (auto& b : sum->named_buffers()) {
      if (b.value().is_floating_point()) b.value().add_(add_b[b.key()]);
    }
    sources.push_back({{"checkpoint", checkpoints[i]}, {"step", info.step}});
  }
  const double n = double(checkpoints.size());
  for (auto& p : sum->parameters()) p.div_(n);
  for (auto& b : sum->buffers()) {
    if (b.is_floating_point()) b.div_(n);
  }
  first.record["average"] = sources;
  detail::encoder_save(out, sum, std::move(first), half, hints);
}

}  // namespace corrtrack
