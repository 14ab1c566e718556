// The base module on its own: typed checkpoint metadata (round trip, old formats, one error form
// naming the file and the key), atomic files and staged folders.
#include "corrtrack/checkpoint_info.h"
#include "corrtrack/core.h"
#include "corrtrack/encoder_precision.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <csignal>
#include <filesystem>
#include <fstream>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

using namespace corrtrack;
namespace fs = std::filesystem;

namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

CheckpointInfo full_info() {
  CheckpointInfo info;
  info.method = "mast";
  info.encoder = ResNetConfig::stride4_64d();
  info.encoder_module = "encoder";
  info.input = InputConvention{"lab", {50.0, 0.0, 0.0}, {50.0, 127.0, 127.0}, 0};
  info.step = 1200;
  info.weights = "float16";
  info.exported_from_step = 1200;
  info.propagation.scale = 0.5;
  info.propagation.mode = "mast";
  info.propagation.topk = 7;
  info.propagation.feedback_power = 1.5;
  info.record["train"] = {{"batch", 12}};
  return info;
}

}  // namespace

// Property: writing then reading gives back every typed field and the recorded extras.
TEST(CheckpointInfo, RoundTripKeepsEveryField) {
  const CheckpointInfo a = full_info();
  const CheckpointInfo b = checkpoint_info_from_json(checkpoint_info_to_json(a), "x.ckpt");
  EXPECT_EQ(b.method, "mast");
  EXPECT_FALSE(b.image_method);
  ASSERT_TRUE(b.encoder.has_value());
  EXPECT_TRUE(*b.encoder == ResNetConfig::stride4_64d());
  EXPECT_FALSE(*b.encoder == ResNetConfig::crw_res3());
  EXPECT_EQ(b.encoder_module, "encoder");
  ASSERT_TRUE(b.input.has_value());
  EXPECT_EQ(b.input->colour, "lab");
  EXPECT_EQ(b.input->std, (std::vector<double>{50.0, 127.0, 127.0}));
  EXPECT_EQ(b.step, 1200);
  EXPECT_EQ(b.weights, "float16");
  EXPECT_EQ(b.exported_from_step.value_or(-1), 1200);
  EXPECT_EQ(b.propagation.scale.value_or(0), 0.5);
  EXPECT_EQ(b.propagation.mode.value_or(""), "mast");
  EXPECT_EQ(b.propagation.topk.value_or(0), 7);
  EXPECT_EQ(b.propagation.feedback_power.value_or(0), 1.5);
  EXPECT_FALSE(b.propagation.context.has_value());
  EXPECT_EQ(b.record.at("train").at("batch"), 12);
  EXPECT_FALSE(b.record.contains("method")) << "typed keys are not duplicated in the record";
}

// Property: the bundled model reads with its settings and carries the checksums that loading
// verifies (it was re-exported from itself to gain them: float16 -> float32 -> float16 is exact).
TEST(CheckpointInfo, ReadsTheBundledModel) {
  const std::string path = std::string(CORRTRACK_TEST_SOURCE_DIR) + "/assets/models/default.ckpt";
  if (!fs::exists(path)) GTEST_SKIP() << "no bundled model at " << path;
  const CheckpointInfo info = checkpoint_info_read(path);
  EXPECT_EQ(info.method, "mast");
  ASSERT_TRUE(info.encoder.has_value());
  EXPECT_EQ(info.encoder->output_stride(), 4);
  EXPECT_EQ(info.weights, "float16");
  EXPECT_EQ(info.propagation.scale.value_or(0), 0.5);
  EXPECT_EQ(info.propagation.refine.value_or(0), 12);
  EXPECT_EQ(info.propagation.feedback_power.value_or(0), 1.5);
  EXPECT_EQ(info.digests.count(""), 1u);
  EXPECT_EQ(info.digests.count("layer1"), 1u);
}

// Property: image-method checkpoints of the older form (cluster head as a name, classes in
// train.clusters) read into the typed head.
TEST(CheckpointInfo, OldClusterHeadForm) {
  const auto info = checkpoint_info_from_json(
      R"({"method":"sela","kind":"image","image_encoder":{"kind":"convnet","in_channels":1,"width":16},
          "input":{"mean":[0.3],"std":[0.35],"size":28},"cluster_head":"head","train":{"clusters":30}})", "s.ckpt");
  EXPECT_TRUE(info.image_method);
  ASSERT_TRUE(info.cluster_head.has_value());
  EXPECT_EQ(info.cluster_head->module, "head");
  EXPECT_EQ(info.cluster_head->classes, 30);
  EXPECT_EQ(info.input->colour, "");
}

// Property: a missing or malformed key is one error that names the file and the key.
TEST(CheckpointInfo, BadKeysNameFileAndKey) {
  auto err = [](const std::string& text) { return message_of([&] { checkpoint_info_from_json(text, "bad.ckpt"); }); };
  EXPECT_EQ(err(R"({"step":3})"), "checkpoint 'bad.ckpt': key 'method' is missing");
  EXPECT_NE(err(R"({"method":5})").find("key 'method' has the wrong type"), std::string::npos);
  EXPECT_EQ(err(R"({"method":"mast","encoder":{"depth":18}})"), "checkpoint 'bad.ckpt': key 'encoder.in_channels' is missing");
  EXPECT_NE(err(R"({"method":"mast","input":{"colour":"rgb","mean":"x","std":[1]}})").find("key 'input.mean'"), std::string::npos);
  EXPECT_NE(err(R"({"method":"mast","propagation":{"scale":"half"}})").find("key 'propagation.scale'"), std::string::npos);
  EXPECT_NE(err(R"({"method":"mast","weights":"int8"})").find("key 'weights'"), std::string::npos);
  EXPECT_NE(err(R"({"method":"mast","input":{"colour":"rgb","mean":[0,0,0],"std":[0,0,0]}})").find("key 'input.std' must hold positive"),
            std::string::npos) << "std 0 would divide every input by zero";
  EXPECT_EQ(err("not json"), "checkpoint 'bad.ckpt': metadata is not valid JSON");
  EXPECT_EQ(err("[1,2]"), "checkpoint 'bad.ckpt': metadata is not a JSON object");
}

// Property: a checkpoint file saved with CheckpointInfo reads back through checkpoint_info_read,
// and a file that is no checkpoint is refused naming it.
TEST(CheckpointInfo, SaveAndReadFile) {
  test::TempDir d;
  ResNet net(ResNetConfig::crw_res3());
  CheckpointInfo info;
  info.method = "random";
  info.encoder = net->config();
  info.input = InputConvention{"rgb", {0.5, 0.5, 0.5}, {0.2, 0.2, 0.2}, 0};
  checkpoint_save(d / "r.ckpt", *net, info);
  EXPECT_EQ(checkpoint_info_read(d / "r.ckpt").method, "random");
  std::ofstream(d / "no.ckpt") << "hello";
  EXPECT_NE(message_of([&] { checkpoint_info_read(d / "no.ckpt"); }).find("no.ckpt"), std::string::npos);
}

// Property: an atomic write replaces the file whole and leaves no temporary sibling; a write into
// a missing folder fails naming the path and creates nothing.
TEST(AtomicFiles, WriteReplacesWholeAndLeavesNoTemporary) {
  test::TempDir d;
  const std::string p = d / "a.txt";
  file_write_atomic(p, "first version, longer than the second\n");
  file_write_atomic(p, "second\n");
  std::ifstream in(p);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "second\n");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(d.path())) entries += e.path().filename() == "a.txt" ? 1 : 100;
  EXPECT_EQ(entries, 1) << "only a.txt: no .tmp sibling left";
  const std::string missing = d / "no/such/dir/b.txt";
  EXPECT_NE(message_of([&] { file_write_atomic(missing, "x"); }).find(missing), std::string::npos);
  EXPECT_FALSE(fs::exists(d / "no"));
}

// Property: a staged folder shows nothing until commit, then every file; uncommitted, it leaves
// no trace.
TEST(AtomicFiles, StagedFolderAppearsOnlyOnCommit) {
  test::TempDir d;
  const std::string out = d / "out";
  {
    StagedFolder s(out);
    std::ofstream(s.path() + "/1.png") << "x";
    EXPECT_FALSE(fs::exists(out + "/1.png"));
  }
  EXPECT_FALSE(fs::exists(out + "/1.png"));
  StagedFolder s(out);
  std::ofstream(s.path() + "/1.png") << "x";
  std::ofstream(s.path() + "/2.png") << "y";
  s.commit();
  EXPECT_TRUE(fs::exists(out + "/1.png"));
  EXPECT_TRUE(fs::exists(out + "/2.png"));
  int hidden = 0;
  for (const auto& e : fs::directory_iterator(d.path())) hidden += e.path().filename().string()[0] == '.' ? 1 : 0;
  EXPECT_EQ(hidden, 0) << "the staging folder is gone";
}

// Property: an atomic write never replaces a device node or a pipe (it used to rename a regular
// file over them); the error names the path and the special file is still what it was.
TEST(AtomicFiles, RefusesNonRegularTargets) {
  test::TempDir d;
  const std::string fifo = d / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(message_of([&] { file_write_atomic(fifo, "x"); }).find("pipe"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ResNet net(ResNetConfig::crw_res3());
  EXPECT_THROW(checkpoint_save(fifo, *net, R"({"method":"random"})"), Error);
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  // A character device like /dev/null, made where the test may (as root).
  const std::string dev = d / "null";
  if (::mknod(dev.c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0) {
    EXPECT_THROW(file_write_atomic(dev, "x"), Error);
    ASSERT_EQ(::lstat(dev.c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
  }
  EXPECT_THROW(file_write_atomic(d.path(), "x"), Error) << "a folder is not replaced either";
  for (const auto& e : fs::directory_iterator(d.path())) EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos);
}

// Property: writing through a symlink replaces the file it points to and keeps the link.
TEST(AtomicFiles, SymlinkKeepsTheLink) {
  test::TempDir d;
  file_write_atomic(d / "real.json", "old\n");
  fs::create_symlink("real.json", d / "link.json");
  file_write_atomic(d / "link.json", "new\n");
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(d / "link.json")));
  std::ifstream in(d / "real.json");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "new\n");
}

// Property: a checkpoint write that fails half-way (the file-size limit stands in for a full
// disk) is an ordinary error: no abort, no temporary file left, the previous checkpoint intact.
TEST(AtomicFiles, CheckpointWriteFailureKeepsThePreviousOne) {
  test::TempDir d;
  const std::string path = d / "last.ckpt";
  ResNet small(ResNetConfig::stride4_64d());
  CheckpointInfo info;
  info.method = "mast";
  info.encoder = small->config();
  info.step = 1;
  checkpoint_save(path, *small, info);
  const auto before = fs::file_size(path);
  ResNet big(ResNetConfig::timecycle_res4(50));   // tens of MB: past the limit below
  info.step = 2;
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* previous = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = before + (1 << 20);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  const std::string msg = message_of([&] { checkpoint_save(path, *big, info); });
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, previous);
  EXPECT_NE(msg.find("last.ckpt"), std::string::npos) << msg;
  EXPECT_EQ(fs::file_size(path), before);
  EXPECT_EQ(checkpoint_info_read(path).step, 1);
  for (const auto& e : fs::directory_iterator(d.path())) EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos);
}

// Property: absurd thread counts are refused by name instead of starting thousands of threads.
TEST(Resources, ThreadCountIsBounded) {
  try {
    threads_set(100000);
    FAIL() << "100000 threads accepted";
  } catch (const SettingError& e) {
    EXPECT_EQ(e.setting(), "threads");
  }
  EXPECT_THROW(threads_set(-1), SettingError);
  threads_set(1);
  EXPECT_EQ(torch::get_num_threads(), 1);
}

// Property: temporaries a killed process left (a staging folder, a .tmp file) are removed by the
// next write of the same output; those of a live process are not touched.
TEST(AtomicFiles, StaleTemporariesOfDeadProcessesAreCleaned) {
  test::TempDir d;
  const std::string dead = "2147483646";  // above any pid_max: no such process
  fs::create_directories(d / (".out.partial-" + dead));
  std::ofstream(d / (".out.partial-" + dead + "/00000.png")) << "x";
  std::ofstream(d / (".a.txt.tmp-" + dead)) << "half";
  std::ofstream(d / ".a.txt.tmp-1") << "init is alive";
  {
    StagedFolder s(d / "out");
    s.commit();
  }
  file_write_atomic(d / "a.txt", "whole\n");
  EXPECT_FALSE(fs::exists(d / (".out.partial-" + dead)));
  EXPECT_FALSE(fs::exists(d / (".a.txt.tmp-" + dead)));
  EXPECT_TRUE(fs::exists(d / ".a.txt.tmp-1")) << "a live process's temporary is left alone";
}

// Property: a checkpoint whose weight bytes were changed after saving (one float flipped in the
// file) is refused as damaged instead of loading silently; an intact one loads, whole or by child.
TEST(CheckpointInfo, DamagedWeightsAreDetected) {
  test::TempDir d;
  torch::nn::Sequential net(torch::nn::Linear(64, 64), torch::nn::Linear(64, 8));
  {
    torch::NoGradGuard ng;
    for (auto& p : net->parameters()) p.fill_(0.5f);
  }
  CheckpointInfo info;
  info.method = "toy";
  checkpoint_save(d / "ok.ckpt", *net, info);
  const auto digests = checkpoint_info_read(d / "ok.ckpt").digests;
  EXPECT_EQ(digests.size(), 3u) << "the whole model and its two children";
  torch::nn::Sequential again(torch::nn::Linear(64, 64), torch::nn::Linear(64, 8));
  EXPECT_NO_THROW(checkpoint_load(d / "ok.ckpt", *again));
  torch::nn::Linear child(64, 8);
  EXPECT_NO_THROW(checkpoint_load(d / "ok.ckpt", *child, "1"));
  std::ifstream in(d / "ok.ckpt", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string half_float("\x00\x00\x00\x3f\x00\x00\x00\x3f", 8);   // two 0.5f, little endian
  const size_t at = bytes.find(half_float);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 3] = '\x40';   // 0.5f -> 2.0f
  std::ofstream(d / "bad.ckpt", std::ios::binary) << bytes;
  EXPECT_NE(message_of([&] { checkpoint_load(d / "bad.ckpt", *again); }).find("bad.ckpt' is damaged"), std::string::npos);
}

// Property: weights of another shape are an architecture mismatch that names the tensor and both
// shapes (LibTorch's Module::load alone would take the stored shape without a word).
TEST(CheckpointInfo, WeightsOfAnotherShapeAreAnError) {
  test::TempDir d;
  torch::nn::Linear saved(16, 5);
  CheckpointInfo info;
  info.method = "toy";
  checkpoint_save(d / "five.ckpt", *saved, info);
  torch::nn::Linear four(16, 4);
  const std::string msg = message_of([&] { checkpoint_load(d / "five.ckpt", *four); });
  EXPECT_NE(msg.find("five.ckpt' does not match the model architecture: 'bias' is [5] in the checkpoint, the model expects [4]"),
            std::string::npos) << msg;
  torch::nn::Linear five(16, 5);
  EXPECT_NO_THROW(checkpoint_load(d / "five.ckpt", *five));
  EXPECT_TRUE(torch::equal(five->weight, saved->weight));
}


// Property: under an EncoderBf16Scope a ResNet computes in bfloat16 and hands back float32 that
// agrees with the float32 forward to bf16 precision (values and the weights' gradients); a scope
// that is off, or none, gives the float32 result bit for bit, and scopes restore what was before.
TEST(EncoderPrecision, Bf16ScopeRunsTheEncoderInBf16AndReturnsFloat32) {
  ResNet net(ResNetConfig::stride4_64d());
  resnet_init(net, 7);
  net->eval();   // batch norm from the running statistics: the same affine map in both runs
  torch::manual_seed(3);
  const auto x = torch::randn({2, 3, 48, 64});
  auto grads = [&] {
    std::vector<torch::Tensor> g;
    for (const auto& p : net->parameters()) g.push_back(p.grad().detach().clone().flatten());
    net->zero_grad();
    return torch::cat(g);
  };
  const auto f32 = net->forward(x);
  f32.pow(2).mean().backward();
  const auto g32 = grads();
  torch::Tensor fb;
  {
    EncoderBf16Scope on(true);
    EXPECT_TRUE(EncoderBf16Scope::active());
    fb = net->forward(x);
    {
      EncoderBf16Scope off(false);
      EXPECT_FALSE(EncoderBf16Scope::active());
      EXPECT_TRUE(torch::equal(net->forward(x), f32));
    }
    EXPECT_TRUE(EncoderBf16Scope::active());
  }
  EXPECT_FALSE(EncoderBf16Scope::active());
  EXPECT_EQ(fb.scalar_type(), torch::kFloat);
  EXPECT_EQ(fb.sizes(), f32.sizes());
  const double rel = ((fb - f32).norm() / f32.norm()).item<double>();
  EXPECT_GT(rel, 1e-4) << "identical to float32: the layers did not run in bf16";
  EXPECT_LT(rel, 0.03);
  fb.pow(2).mean().backward();
  const auto gb = grads();
  EXPECT_GT(torch::cosine_similarity(gb, g32, 0).item<double>(), 0.99);
  for (const auto& p : net->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(net->forward(x), f32)) << "autocast left on after the scope";
}
