// Labelled image sets for the image methods: Fashion-MNIST from Debian's dataset-fashion-mnist
// (gzip IDX files) and ImageFolder-style directories (<root>/<class>/<image>).
#include "corrtrack/core.h"
#include "corrtrack/video.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#ifdef CORRTRACK_HAVE_ZLIB
#include <zlib.h>
#endif

namespace fs = std::filesystem;

namespace corrtrack {

namespace {

constexpr const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

#ifdef CORRTRACK_HAVE_ZLIB
// Whole content of a gzip file (or of a plain file: zlib reads those transparently).
std::string gunzip_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error("cannot open '" + path + "'");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, size_t(n));
  const bool bad = n < 0;
  gzclose(f);
  if (bad) throw Error("'" + path + "' is not a readable gzip file");
  return out;
}
#else
std::string gunzip_file(const std::string& path) {
  throw Error("cannot read '" + path + "': this corrtrack was built without zlib");
}
#endif

uint32_t be32(const std::string& s, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + at);
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// IDX (LeCun's MNIST format): magic 0x0000 08 <dims>, big-endian sizes, then uint8 data.
torch::Tensor read_idx(const std::string& path, int want_dims) {
  const std::string s = gunzip_file(path);
  if (s.size() < 4 + 4 * size_t(want_dims) || be32(s, 0) != uint32_t(0x800 + want_dims)) {
    throw Error("'" + path + "' is not an IDX file with " + std::to_string(want_dims) + " dimensions of uint8");
  }
  std::vector<int64_t> dims;
  size_t count = 1;
  for (int i = 0; i < want_dims; ++i) {
    dims.push_back(be32(s, 4 + 4 * size_t(i)));
    count *= size_t(dims.back());
  }
  const size_t header = 4 + 4 * size_t(want_dims);
  if (s.size() != header + count) throw Error("'" + path + "' is truncated or has trailing bytes");
  auto t = torch::empty(dims, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), s.data() + header, count);
  return t;
}

ImageDataset load_fashion_mnist(bool train) {
  const char* env = std::getenv("CORRTRACK_FASHION_MNIST");
  const std::string dir = env ? env : kFashionDir;
  const std::string stem = train ? "train" : "t10k";
  const std::string images = dir + "/" + stem + "-images-idx3-ubyte.gz";
  const std::string labels = dir + "/" + stem + "-labels-idx1-ubyte.gz";
  if (!fs::exists(images)) {
    throw Error("Fashion-MNIST not found at '" + images + "': install the Debian package dataset-fashion-mnist "
                "(or set CORRTRACK_FASHION_MNIST to a folder with the IDX files)");
  }
  ImageDataset d;
  d.name = "fashion-mnist";
  d.images = read_idx(images, 3).unsqueeze(1);  // [N, 1, 28, 28]
  d.labels = read_idx(labels, 1).to(torch::kLong);
  if (d.labels.size(0) != d.images.size(0)) throw Error("'" + labels + "' does not have one label per image of '" + images + "'");
  d.classes = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  return d;
}

ImageDataset load_image_folder(const std::string& root, bool train, int size) {
  // Optional train/ and test/ (or val/) splits; otherwise the folder itself is the set.
  fs::path base(root);
  if (train && fs::is_directory(base / "train")) base /= "train";
  else if (!train && fs::is_directory(base / "test")) base /= "test";
  else if (!train && fs::is_directory(base / "val")) base /= "val";
  std::vector<fs::path> class_dirs;
  for (const auto& e : fs::directory_iterator(base)) if (e.is_directory()) class_dirs.push_back(e.path());
  std::sort(class_dirs.begin(), class_dirs.end());
  if (class_dirs.empty()) throw Error("image folder '" + base.string() + "' has no class sub-folders (<root>/<class>/<image>)");
  ImageDataset d;
  d.name = base.string();
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  for (size_t c = 0; c < class_dirs.size(); ++c) {
    d.classes.push_back(class_dirs[c].filename().string());
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(class_dirs[c])) {
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
      if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      Image img = image_read(f.string());
      if (img.width != size || img.height != size) img = image_resize(img, size, size);
      images.push_back(torch::from_blob(img.data.data(), {size, size, 3}, torch::kUInt8).permute({2, 0, 1}).clone());
      labels.push_back(int64_t(c));
    }
  }
  if (images.empty()) throw Error("image folder '" + base.string() + "' holds no .png/.jpg images");
  d.images = torch::stack(images);
  d.labels = torch::tensor(labels, torch::kLong);
  return d;
}

}  // namespace

ImageDataset image_dataset_load(const std::string& spec, bool train, int size) {
  if (spec == "fashion-mnist") return load_fashion_mnist(train);
  if (!fs::is_directory(spec)) throw SettingError("data", "'" + spec + "' is neither 'fashion-mnist' nor an image folder");
  return load_image_folder(spec, train, size);
}

}  // namespace corrtrack
