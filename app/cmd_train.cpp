// corrtrack train / cache build / cache inspect / bench train / bench clips.
#include <torch/torch.h>

#include "cli_common.h"
#include "corrtrack/adaptation.h"
#include "corrtrack/checkpoint_info.h"
#include "corrtrack/clip_cache.h"
#include "corrtrack/core.h"
#include "corrtrack/distributed.h"
#include "corrtrack/encoder_average.h"
#include "corrtrack/image_methods.h"
#include "corrtrack/inspection.h"
#include "corrtrack/propagation_settings.h"
#include "corrtrack/tracking.h"
#include "corrtrack/train.h"
#include "corrtrack/video.h"
#include "corrtrack/training_setup.h"
#include "corrtrack/video_methods.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace corrtrack::cli {

namespace {

// --precision of training on `device`: true for bf16 (encoder autocast), false for fp32; auto is
// bf16 where propagation's auto is (a CPU with AMX/AVX512-BF16), else fp32.
bool training_precision_parse(const std::string& name, torch::Device device) {
  if (name == "auto") return precision_resolve(Precision::Auto, device) == Precision::BFloat16;
  if (name != "fp32" && name != "bf16") throw SettingError("precision", "must be fp32, bf16 or auto, got '" + name + "'");
  return name == "bf16";
}

// Data-parallel settings: a local launch (--nproc) or one rank of a run started elsewhere.
struct DistArgs {
  int nproc = 1;
  DistConfig cfg;
  CLI::App* app = nullptr;
};

struct TrainArgs {
  DistArgs dist;
  TrainingSetup setup;
  std::string out, device = "auto", schedule = "constant", backbone = "resnet50", precision = "fp32";
  std::string init;   // --init: the encoder starts from this checkpoint's (a fine-tune)
  OptimizerConfig opt;
  TrainOptions run;
  int64_t warmup = 0;
  std::vector<int64_t> milestones;
  double gamma = 0.5;
  int batch = 0;
  bool keep_checkpoints = false;   // --keep-checkpoints
};

void add_train_options(CLI::App* c, TrainArgs& a) {
  auto& s = a.setup;
  c->add_option("--method", s.method, "Method: " + method_list())->required();
  c->add_option("--data", s.data, "Video methods: clip cache, videos, frame folders, DAVIS roots. Image methods: fashion-mnist or an image folder")->required();
  c->add_option("--batch", a.batch, "Clips (video methods; default 12) or images (image methods; default 256) per step");
  c->add_option("--encoder", s.image.encoder.kind, "Image methods: convnet | resnet18")->capture_default_str();
  c->add_option("--width", s.image.encoder.width, "Image methods: ConvNet base width (features = 4 x width)")->capture_default_str();
  c->add_option("--temperature", s.image.temperature, "Image methods and crw: softmax temperature (0 = the method's default)")->capture_default_str();
  c->add_option("--clusters", s.image.clusters, "Image methods: prototypes / clusters (0 = the method's default)")->capture_default_str();
  c->add_option("--queue", s.image.queue, "Image methods: MoCo/PCL queue length, NPID noise samples")->capture_default_str();
  c->add_option("--key-bn-groups", s.image.key_bn_groups, "Image methods: MoCo/PCL key batch encoded in this many shuffled BatchNorm groups (MoCo's shuffling BN on one device)")->capture_default_str();
  c->add_option("--ema", s.image.momentum, "Image methods: EMA momentum of MoCo/PCL's key encoder, BYOL's target at the start (rising to 1)")->capture_default_str();
  c->add_option("--image-size", s.image.augment.size, "Image methods: view size (ImageFolder images are resized to it)")->capture_default_str();
  c->add_option("--clip-frames", s.video.clip_frames, "crw, timecycle: frames per clip (0 = 4)")->capture_default_str();
  c->add_option("--frame-gap", s.video.frame_gap, "crw, timecycle: frames between clip frames (0 = crw 3, timecycle 2)")->capture_default_str();
  c->add_option("--nodes", s.video.nodes, "crw: patch (64x64 patches at stride 32) | dense (every stride-8 cell)")->capture_default_str();
  c->add_option("--edge-dropout", s.video.edge_dropout, "crw: probability of dropping a transition edge")->capture_default_str();
  c->add_option("--backbone", a.backbone, "timecycle: resnet50 (published) | resnet18")->capture_default_str();
  c->add_option("--patch", s.video.patch, "timecycle: tracked patch side in pixels")->capture_default_str();
  c->add_option("--crop", s.video.sampler.crop, "Training crop side in pixels")->capture_default_str();
  c->add_option("--min-scale", s.video.sampler.min_scale, "Smallest crop area fraction")->capture_default_str();
  c->add_option("--jitter", s.video.sampler.jitter, "Colour jitter strength")->capture_default_str();
  c->add_option("--steps", a.run.steps, "Optimiser steps")->capture_default_str();
  c->add_option("--optimizer", a.opt.name, "sgd | adam | lars")->capture_default_str();
  c->add_option("--lr", a.opt.lr, "Base learning rate")->capture_default_str();
  c->add_option("--beta1", a.opt.beta1, "Adam beta1 (TimeCycle used 0.5)")->capture_default_str();
  c->add_option("--weight-decay", a.opt.weight_decay, "Weight decay")->capture_default_str();
  c->add_option("--lars-eta", a.opt.lars_eta, "LARS trust coefficient: a tensor's rate is lr x trust, trust = eta x |w| / (|g| + wd |w|)")->capture_default_str();
  c->add_flag("--lars-clip", a.opt.lars_clip, "LARS: a tensor's rate is min(trust, lr) instead (never faster than SGD at lr)");
  c->add_option("--schedule", a.schedule, "constant | cosine | step")->capture_default_str();
  c->add_option("--warmup", a.warmup, "Linear warm-up steps")->capture_default_str();
  c->add_option("--milestones", a.milestones, "Step schedule: steps where the lr is multiplied by --gamma");
  c->add_option("--gamma", a.gamma, "Step schedule factor")->capture_default_str();
  c->add_option("--clip-grad", a.run.clip_grad_norm, "Clip the gradient norm (0 = off)")->capture_default_str();
  c->add_option("--seed", a.run.seed, "Seed (initialisation and batches)")->capture_default_str();
  c->add_option("--device", a.device, "cpu | cuda | auto")->capture_default_str();
  c->add_option("--precision", a.precision, "Encoder arithmetic: fp32 | bf16 (autocast; about 2x the steps per second on CPUs with AMX/AVX512-BF16; heads, losses and weights stay fp32) | auto (bf16 on such a CPU, else fp32)")->capture_default_str();
  c->add_option("--cache-size", s.cache_size, "Video methods: short side of the frames trained on (the run's cache or streamed)")->capture_default_str();
  c->add_option("--data-mode", s.data_mode, "Video methods given videos: cache (decode once into RUN/clips.ctc) | stream (read clips from the files) | auto (stream lists and more than 64 videos)")->capture_default_str();
  c->add_option("--workers", s.video.loader.workers, "Video methods: threads reading the next steps' clips while a step trains (0 = in the step)")->capture_default_str();
  auto& d = a.dist;
  d.app = c;
  c->add_option("--nproc", d.nproc, "Train with this many processes on this machine (data parallel; --batch is split among them)")->capture_default_str();
  c->add_option("--rank", d.cfg.rank, "This process's rank in a multi-process run (default: $RANK, $SLURM_PROCID)");
  c->add_option("--world-size", d.cfg.world_size, "Processes in the run (default: $WORLD_SIZE, $SLURM_NTASKS)");
  c->add_option("--local-rank", d.cfg.local_rank, "Rank on this machine (default: $LOCAL_RANK, $SLURM_LOCALID)");
  c->add_option("--master-addr", d.cfg.master_addr, "Machine of rank 0 (default: $MASTER_ADDR or 127.0.0.1)");
  c->add_option("--master-port", d.cfg.master_port, "Port of rank 0's store (default: $MASTER_PORT; --nproc picks a free one)");
  c->add_option("--backend", d.cfg.backend, "gloo | nccl | auto")->capture_default_str();
  c->add_option("--dist-timeout", d.cfg.timeout_s, "Seconds a rank waits for the others (joining, each collective) before failing")->capture_default_str();
}

// The rendezvous: flags, then the environment (torchrun, SLURM).
DistConfig dist_config(const DistArgs& d) {
  std::vector<std::string> flags;
  for (const auto& [option, field] : std::vector<std::pair<std::string, std::string>>{
           {"--rank", "rank"}, {"--world-size", "world_size"}, {"--local-rank", "local_rank"},
           {"--master-addr", "master_addr"}, {"--master-port", "master_port"}}) {
    if (d.app->get_option(option)->count() > 0) flags.push_back(field);
  }
  DistConfig c = dist_config_from_env(d.cfg, flags);
  dist_config_validate(c);
  return c;
}

// Whether this process is to start the ranks: `--nproc N` (N > 1) outside a multi-process run.
bool dist_launching(const DistArgs& d) {
  if (d.nproc < 1) throw SettingError("nproc", "must be at least 1");
  if (d.nproc == 1 || std::getenv("RANK")) return false;
  if (d.app->get_option("--rank")->count() || d.app->get_option("--world-size")->count()) {
    throw SettingError("nproc", "starts the ranks itself; leave out --rank and --world-size");
  }
  return true;
}

// Starts N copies of this command line without --nproc, each a rank, and waits for them.
void dist_launch(const DistArgs& d) {
  std::vector<std::string> argv{"/proc/self/exe"};
  const auto& args = program_args();
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--nproc") { ++i; continue; }
    if (args[i].rfind("--nproc=", 0) == 0) continue;
    argv.push_back(args[i]);
  }
  const int port = d.app->get_option("--master-port")->count() ? d.cfg.master_port : free_tcp_port();
  DistConfig check = d.cfg;
  check.world_size = d.nproc;
  check.master_port = port;
  dist_config_validate(check);
  dist_launch_local(argv, d.nproc, port);
}

int global_batch(const TrainingSetup& s) { return s.batch.value_or(method_is_image(s.method) ? s.image.batch : s.video.batch); }

void batch_check(const TrainingSetup& s, int world) {
  if (global_batch(s) % world != 0) {
    throw SettingError("batch", std::to_string(global_batch(s)) + " must be a multiple of the " + std::to_string(world) + " ranks");
  }
}

// Joins the run and gives this rank its share of the global batch.
std::shared_ptr<Distributed> dist_join(TrainArgs& a, const DistConfig& c, TrainingSetup& setup) {
  batch_check(setup, c.world_size);
  if (c.world_size > 1) setup.batch = global_batch(setup) / c.world_size;
  if (c.rank > 0) log_set_verbosity(0);   // rank 0 reports for the run
  // One GPU per rank on this machine; with fewer GPUs than ranks, ranks share them round-robin.
  if (c.world_size > 1 && a.run.device.is_cuda()) {
    const int gpus = std::max<int>(1, int(torch::cuda::device_count()));
    a.run.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(c.local_rank % gpus));
  }
  return dist_connect(c);
}

// The method on every rank; rank 0 first, so that a clip cache the run folder needs is built
// once and then read by the others.
std::unique_ptr<TrainableMethod> method_create(const TrainingSetup& s, const std::shared_ptr<Distributed>& group) {
  if (!group->is_main()) group->barrier();
  auto m = training_method_create(s);
  if (group->is_main()) group->barrier();
  m->set_distributed(group);
  return m;
}

bool given(CLI::App* c, const std::string& option) { return c->get_option(option)->count() > 0; }

// The method's published settings (training_setup.h) in place of every one not given; returns
// what was applied.
nlohmann::json apply_recipe(TrainArgs& a, CLI::App* c, bool cuda) {
  const TrainingRecipe r = training_recipe(a.setup.method, cuda);
  if (r.source.empty()) return {};
  nlohmann::json applied = {{"source", r.source}};
  auto fill = [&](const char* option, auto& target, const auto& value, const char* key) {
    if (!value || given(c, option)) return;
    target = *value;
    applied[key] = *value;
  };
  // Another optimiser than the recipe's takes none of the recipe's optimiser settings (LARS's rate
  // 0.4 is no rate for Adam): the command's own defaults stay.
  const bool other_optimizer = r.optimizer && given(c, "--optimizer") && a.opt.name != *r.optimizer;
  if (other_optimizer) {
    applied["optimizer_settings"] = "the command's: --optimizer " + a.opt.name + " is not the recipe's " + *r.optimizer;
  } else {
    fill("--optimizer", a.opt.name, r.optimizer, "optimizer");
    fill("--lr", a.opt.lr, r.lr, "lr");
    fill("--weight-decay", a.opt.weight_decay, r.weight_decay, "weight_decay");
    fill("--beta1", a.opt.beta1, r.beta1, "beta1");
    fill("--lars-eta", a.opt.lars_eta, r.lars_eta, "lars_eta");
    fill("--lars-clip", a.opt.lars_clip, r.lars_clip, "lars_clip");
  }
  fill("--temperature", a.setup.image.temperature, r.temperature, "temperature");
  fill("--ema", a.setup.image.momentum, r.ema, "ema");
  fill("--clip-grad", a.run.clip_grad_norm, r.clip_grad, "clip_grad");
  fill("--min-scale", a.setup.video.sampler.min_scale, r.min_scale, "min_scale");
  fill("--crop", a.setup.video.sampler.crop, r.crop, "crop");
  fill("--batch", a.setup.batch, r.batch, "batch");   // a given --batch is set by training_setup
  if (r.warmup_fraction && !given(c, "--warmup")) {
    a.warmup = std::llround(*r.warmup_fraction * double(a.run.steps));
    applied["warmup"] = a.warmup;
  }
  // The schedule comes whole or not at all: a user's --schedule cosine wants no milestones.
  if (r.schedule && !given(c, "--schedule") && !given(c, "--milestones") && !given(c, "--gamma")) {
    a.schedule = *r.schedule;
    a.milestones = r.milestones;
    a.gamma = r.gamma.value_or(a.gamma);
    applied["schedule"] = a.schedule;
    applied["milestones"] = a.milestones;
    applied["gamma"] = a.gamma;
  }
  return applied;
}

// --lars-eta and --lars-clip shape LARS's rate; given with another optimiser they would do nothing.
void lars_options_check(const TrainArgs& a, CLI::App* c) {
  if (a.opt.name == "lars") return;
  for (const char* option : {"--lars-eta", "--lars-clip"}) {
    if (given(c, option)) throw Error(std::string(option) + " applies to --optimizer lars only; this run's optimiser is " + a.opt.name);
  }
}

// The setup as the options describe it (a given --batch, the backbone, --temperature for crw).
TrainingSetup training_setup(TrainArgs& a, CLI::App* c) {
  TrainingSetup s = a.setup;
  if (given(c, "--batch")) s.batch = a.batch;
  s.run_dir = a.out;
  s.seed = a.run.seed;
  s.total_steps = a.run.steps;
  s.video.temperature = s.image.temperature;
  if (a.backbone != "resnet50" && a.backbone != "resnet18") {
    throw Error("--backbone must be resnet50 or resnet18, got '" + a.backbone + "'");
  }
  s.video.backbone_depth = a.backbone == "resnet50" ? 50 : 18;
  return s;
}

// RUN/last.ckpt copied to RUN/checkpoints/step-<step>.ckpt (through a temporary name).
void checkpoint_keep(const std::string& run, int64_t step) {
  const fs::path dir = fs::path(run) / "checkpoints";
  fs::create_directories(dir);
  const fs::path kept = dir / ("step-" + std::to_string(step) + ".ckpt");
  const fs::path tmp = kept.string() + ".tmp";
  fs::copy_file(fs::path(run) / "last.ckpt", tmp, fs::copy_options::overwrite_existing);
  fs::rename(tmp, kept);
}

LrSchedule make_schedule(const TrainArgs& a) {
  LrSchedule s;
  s.kind = a.schedule;
  s.warmup_steps = a.warmup;
  s.milestones = a.milestones;
  s.gamma = a.gamma;
  return s;
}

// How the run was started, for the checkpoint's record (the batch as the run uses it).
std::string command_json(const TrainArgs& a, const TrainingSetup& s, const nlohmann::json& recipe, int world_size) {
  json j = {{"method", s.method}, {"data", s.data}, {"batch", s.batch.value_or(method_is_image(s.method) ? s.image.batch : s.video.batch)},
            {"world_size", world_size}, {"crop", s.video.sampler.crop},
            {"steps", a.run.steps}, {"optimizer", a.opt.name}, {"lr", a.opt.lr}, {"schedule", a.schedule},
            {"seed", a.run.seed}, {"beta1", a.opt.beta1}, {"lars_eta", a.opt.lars_eta}, {"lars_clip", a.opt.lars_clip}, {"clip_grad", a.run.clip_grad_norm}, {"min_scale", s.video.sampler.min_scale}};
  if (!recipe.empty()) j["recipe"] = recipe;
  if (s.method == "moco" || s.method == "pcl") j["key_bn_groups"] = s.image.key_bn_groups;
  if (!a.init.empty()) j["init"] = a.init;
  return j.dump();
}

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* train = app.add_subcommand("train", "Train a correspondence method; writes RUN/last.ckpt, RUN/metrics.jsonl and RUN/curves.png");
  add_train_options(train, *args);
  train->add_option("--out", args->out, "Run folder")->required();
  train->add_flag("--resume", args->run.resume, "Continue the run in --out from its last checkpoint");
  train->add_option("--init", args->init, "Start the encoder from this checkpoint's (a training checkpoint or an exported model, e.g. assets/models/default.ckpt): a fine-tune");
  train->add_option("--checkpoint-every", args->run.checkpoint_every, "Steps between checkpoints")->capture_default_str();
  train->add_option("--log-every", args->run.log_every, "Steps between metrics.jsonl lines")->capture_default_str();
  train->add_option("--time-budget", args->run.time_budget_s, "Stop after this many seconds of training (0 = off)")->capture_default_str();
  train->add_flag("--freeze-bn", args->run.freeze_batch_norm, "Batch norm keeps the running statistics it starts with (normalises with them; its scale and shift still train): for fine-tunes (--init) at small batches");
  train->add_flag("--keep-checkpoints", args->keep_checkpoints, "Also keep every checkpoint as RUN/checkpoints/step-<N>.ckpt (to evaluate the run at several points)");
  train->callback([args, train] {
    auto& a = *args;
    const bool launching = dist_launching(a.dist);
    const DistConfig dist = dist_config(a.dist);
    a.run.device = device_parse(a.device);
    a.run.bf16 = training_precision_parse(a.precision, a.run.device);
    const nlohmann::json recipe = apply_recipe(a, train, a.run.device.is_cuda());
    if (!recipe.empty() && !launching) log_get("app")->info("{} recipe: {}", a.setup.method, recipe.dump());
    lars_options_check(a, train);
    if (a.setup.image.key_bn_groups < 1) throw SettingError("key-bn-groups", "must be at least 1, got " + std::to_string(a.setup.image.key_bn_groups));
    TrainingSetup setup = training_setup(a, train);
    a.run.out_dir = a.out;
    const LrSchedule schedule = make_schedule(a);
    if (!a.init.empty()) {
      if (a.run.resume) throw Error("--init starts a run from a checkpoint's encoder and --resume continues one: give one of them");
      checkpoint_info_read(a.init);   // a missing or foreign file refused before the data is loaded
    }
    train_check(a.opt, schedule, a.run);  // before any data is loaded or a cache built into the run folder
    if (launching) {
      batch_check(setup, a.dist.nproc);
      return dist_launch(a.dist);   // the ranks train; rank 0 prints the summary
    }
    a.run.command_json = command_json(a, setup, recipe, dist.world_size);
    auto group = dist_join(a, dist, setup);
    auto method = method_create(setup, group);
    if (!a.init.empty()) {
      method_init_encoder(*method, a.init);   // every rank alike (rank 0's weights are broadcast anyway)
      log_get("app")->info("encoder initialised from {}", a.init);
    }
    if (group->is_main()) {
      a.run.on_checkpoint = [run = a.out, keep = a.keep_checkpoints](int64_t step) {
        if (keep) checkpoint_keep(run, step);
        training_curves_write({run}, (fs::path(run) / "curves.png").string());
      };
    }
    const auto s = train_run(*method, a.opt, schedule, a.run);
    if (!group->is_main()) return;
    json out = {{"method", setup.method}, {"checkpoint", s.checkpoint}, {"first_step", s.first_step}, {"last_step", s.last_step},
                {"skipped_steps", s.skipped_steps}, {"seconds", s.seconds}, {"ms_per_step", s.ms_per_step},
                {method_is_image(setup.method) ? "images_per_s" : "clips_per_s", s.samples_per_s}, {"final_loss", s.final_loss},
                {"cancelled", s.cancelled}, {"budget_reached", s.budget_reached}, {"device", a.run.device.str()},
                {"precision", a.run.bf16 ? "bf16" : "fp32"}, {"world_size", group->world_size()}, {"backend", group->backend()}};
    json_emit(out);
  });
}

void add_export_command(CLI::App& app) {
  struct ExportArgs {
    std::string checkpoint, out, propagation;
    std::vector<std::string> average;
    bool half = false;
  };
  auto ea = std::make_shared<ExportArgs>();
  auto* ex = app.add_subcommand("export", "Write a training checkpoint's encoder alone (for propagate, sharing, bundling)");
  ex->add_option("--checkpoint", ea->checkpoint, "Training checkpoint (RUN/last.ckpt)")->required();
  ex->add_option("--out", ea->out, "Model file to write")->required();
  ex->add_flag("--half", ea->half, "Store float16 weights (half the size; computed in float32)");
  ex->add_option("--propagation", ea->propagation, "Recommended engine settings as JSON, e.g. '{\"scale\":0.5}'");
  ex->add_option("--average", ea->average, "More checkpoints of the same encoder: write the mean of their weights and --checkpoint's (weight averaging, e.g. a fine-tune's kept checkpoints; see encoder_average.h)");
  ex->callback([ea] {
    const auto hints = ea->propagation.empty() ? PropagationHints() : propagation_hints_from_json(ea->propagation, "--propagation");
    if (ea->average.empty()) {
      feature_encoder_export(ea->checkpoint, ea->out, ea->half, hints);
    } else {
      std::vector<std::string> all{ea->checkpoint};
      all.insert(all.end(), ea->average.begin(), ea->average.end());
      feature_encoder_average(all, ea->out, ea->half, hints);
    }
    std::error_code ec;
    json_emit({{"model", ea->out}, {"bytes", fs::file_size(ea->out, ec)}, {"weights", ea->half ? "float16" : "float32"},
               {"averaged", 1 + ea->average.size()}});
  });

}

void add_eval_image_command(CLI::App& app) {
  struct EvalImageArgs {
    std::string checkpoint, data = "fashion-mnist", features = "pixels", json, device = "auto";
    ImageEncoderConfig random_encoder;
    int linear_epochs = 10, size = 32;
    uint64_t seed = 0;
  };
  auto ia = std::make_shared<EvalImageArgs>();
  auto* ei = app.add_subcommand("eval-image", "kNN, linear probe, NMI, alignment and uniformity of an image encoder");
  ei->add_option("--checkpoint", ia->checkpoint, "Image-method checkpoint (RUN/last.ckpt)");
  ei->add_option("--features", ia->features, "Without --checkpoint: pixels | random")->capture_default_str();
  ei->add_option("--encoder", ia->random_encoder.kind, "Encoder of --features random: convnet | resnet18")->capture_default_str();
  ei->add_option("--width", ia->random_encoder.width, "ConvNet width of --features random")->capture_default_str();
  ei->add_option("--data", ia->data, "fashion-mnist or an image folder with train/ and test/")->capture_default_str();
  ei->add_option("--image-size", ia->size, "Image folder: images resized to this")->capture_default_str();
  ei->add_option("--linear-epochs", ia->linear_epochs, "Linear probe epochs")->capture_default_str();
  ei->add_option("--seed", ia->seed, "Seed (random encoder, k-means, probe)")->capture_default_str();
  ei->add_option("--json", ia->json, "Also write the JSON here");
  ei->add_option("--device", ia->device, "cpu | cuda | auto (features, kNN, k-means and the probe on this device)")->capture_default_str();
  ei->callback([ia] {
    const torch::Device device = device_parse(ia->device);
    if (!ia->checkpoint.empty()) image_checkpoint_encoder(ia->checkpoint);  // refuse a foreign one before loading data
    const auto train = image_dataset_load(ia->data, true, ia->size);
    const auto test = image_dataset_load(ia->data, false, ia->size);
    ia->random_encoder.in_channels = int(train.images.size(1));
    torch::manual_seed(ia->seed);
    ImageEvalOptions o;
    o.linear_epochs = ia->linear_epochs;
    o.seed = ia->seed;
    o.device = device;
    const auto r = image_evaluate(ia->checkpoint, ia->features, ia->random_encoder, train.images, train.labels, test.images,
                                  test.labels, int64_t(train.classes.size()), o);
    json j = {{"data", train.name}, {"checkpoint", ia->checkpoint}, {"features", ia->checkpoint.empty() ? ia->features : "checkpoint"},
              {"knn_top1", r.knn_top1_k200}, {"knn_top1_k20", r.knn_top1_k20}, {"knn_top1_k200", r.knn_top1_k200},
              {"linear_top1", r.linear_top1}, {"nmi", r.nmi_kmeans}, {"alignment", r.alignment}, {"uniformity", r.uniformity},
              {"train_images", r.train_images}, {"test_images", r.test_images}};
    if (r.nmi_head >= 0) j["nmi_cluster_head"] = r.nmi_head;
    if (!ia->json.empty()) json_emit(j, ia->json);
    json_emit(j);
  });

}

void add_cache_commands(CLI::App& app) {
  auto* cache = app.add_subcommand("cache", "Pre-decode training videos into a clip cache")->require_subcommand(1);
  struct CacheArgs {
    std::vector<std::string> inputs;
    std::string out, path, codec = "raw";
    ClipCacheBuildOptions build;
  };
  auto ca = std::make_shared<CacheArgs>();
  auto* build = cache->add_subcommand("build", "Decode videos / frame folders / DAVIS roots / lists into one cache file (resumable)");
  build->add_option("--input", ca->inputs, "Video files, frame folders, folders of videos, DAVIS roots, text lists (.txt)")->required();
  build->add_option("--out", ca->out, "Cache file to write (.ctc)")->required();
  build->add_option("--size", ca->build.short_side, "Short side of the stored frames (0 = native)")->capture_default_str();
  build->add_option("--codec", ca->codec, "raw (decoded pixels, fastest to read) | jpeg (about 10x smaller)")->capture_default_str();
  build->add_option("--quality", ca->build.quality, "JPEG quality, 1-100")->capture_default_str();
  build->add_option("--workers", ca->build.workers, "Videos decoded at once")->capture_default_str();
  build->callback([ca] {
    if (ca->build.short_side < 0) throw Error("--size must be >= 0");
    ca->build.codec = clip_codec_parse(ca->codec);
    const auto r = clip_cache_build(ca->inputs, ca->out, ca->build);
    json_emit({{"cache", ca->out}, {"codec", ca->codec}, {"videos", r.videos}, {"frames", r.frames}, {"resumed", r.resumed},
               {"skipped", r.skipped}, {"bytes", r.bytes}, {"seconds", r.seconds}});
  });
  auto* inspect = cache->add_subcommand("inspect", "List the videos of a cache");
  inspect->add_option("cache", ca->path, "Cache file")->required();
  inspect->callback([ca] {
    ClipCache c(ca->path);
    json vids = json::array();
    for (const auto& v : c.videos()) vids.push_back({{"name", v.name}, {"frames", v.frames}, {"width", v.width}, {"height", v.height}});
    json_emit({{"cache", ca->path}, {"codec", clip_codec_name(c.codec())}, {"frames", c.total_frames()}, {"videos", vids}});
  });
}

void add_train_benchmarks(CLI::App& bench) {
  // ---- bench train: ms/step and clips/s of a method, no files written ----
  auto args = std::make_shared<TrainArgs>();
  auto* bt = bench.add_subcommand("train", "Training speed of a method: ms per step, clips per second");
  add_train_options(bt, *args);
  args->run.steps = 20;
  bt->add_option("--warmup-steps", args->warmup, "Untimed steps first")->capture_default_str();
  bt->callback([args, bt] {
    auto& a = *args;
    const bool launching = dist_launching(a.dist);
    const DistConfig dist = dist_config(a.dist);
    a.run.device = device_parse(a.device);
    a.run.bf16 = training_precision_parse(a.precision, a.run.device);
    a.out = (fs::temp_directory_path() / ("corrtrack-bench-data-" + std::to_string(::getpid()))).string();
    struct Cleanup {
      std::string p;
      ~Cleanup() { std::error_code ec; fs::remove_all(p, ec); }
    } cleanup{a.out};
    TrainingSetup setup = training_setup(a, bt);   // a benchmark measures the settings given, no recipe
    const bool image = method_is_image(setup.method);
    const int batch = global_batch(setup);
    if (launching) {
      batch_check(setup, a.dist.nproc);
      return dist_launch(a.dist);
    }
    auto group = dist_join(a, dist, setup);
    auto method = method_create(setup, group);
    json j = bench_train(*method, a.opt, a.run, a.warmup);
    if (!group->is_main()) return;
    j["batch"] = batch;   // the global batch; each rank trains batch / world_size
    j["world_size"] = group->world_size();
    j["backend"] = group->backend();
    j["size"] = image ? setup.image.augment.size : setup.video.sampler.crop;
    j["encoder"] = image ? setup.image.encoder.kind : "resnet18-stride4";
    json_emit(j);
  });

  // ---- bench clips: clips/s of the training loader from a cache or streamed videos ----
  auto bo = std::make_shared<BenchClipsOptions>();
  auto* bc = bench.add_subcommand("clips", "Clip loading for training: clips/s from a cache or streamed videos, per worker count");
  bc->add_option("--data", bo->setup.data, "A clip cache, or videos / frame folders / DAVIS roots / lists")->required();
  bc->add_option("--data-mode", bo->setup.data_mode, "For videos: stream | cache (decoded into a temporary cache first) | auto")->capture_default_str();
  bc->add_option("--size", bo->setup.cache_size, "For videos: short side of the frames")->capture_default_str();
  bc->add_option("--workers", bo->workers, "Worker counts to measure")->capture_default_str()->delimiter(',');
  bc->add_option("--clips", bo->clips, "Clips per measurement (3 frames, 4 apart)")->capture_default_str();
  bc->add_option("--batch", bo->batch, "Clips per step")->capture_default_str();
  bc->add_option("--crop", bo->crop, "Crop side")->capture_default_str();
  bc->callback([bo] {
    if (bo->workers.empty()) throw SettingError("workers", "needs at least one count");
    for (int w : bo->workers) if (w < 0 || w > 256) throw SettingError("workers", "must be in [0, 256]");
    const std::string tmp = (fs::temp_directory_path() / ("corrtrack-bench-clips-" + std::to_string(::getpid()))).string();
    struct Cleanup {
      std::string p;
      ~Cleanup() { std::error_code ec; fs::remove_all(p, ec); }
    } cleanup{tmp};
    bo->setup.run_dir = tmp;
    bo->setup.video.loader.workers = *std::max_element(bo->workers.begin(), bo->workers.end());
    json_emit(bench_clips(*bo));
  });
}

}  // namespace

void register_train_commands(CLI::App& app) {
  add_train_command(app);
  add_export_command(app);
  add_eval_image_command(app);
  add_cache_commands(app);
  add_train_benchmarks(*app.get_subcommand("bench"));
}

}  // namespace corrtrack::cli
