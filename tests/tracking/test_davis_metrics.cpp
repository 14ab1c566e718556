// DAVIS J&F: hand-computed cases of the definition, and the official values in
// ../shared/fixtures/jf-reference reproduced to 1e-6.
#include "test_support.h"

#include "corrtrack/tracking.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

using namespace corrtrack;

namespace {
Image mask_from_rows(const std::vector<std::string>& rows) {
  Image m(static_cast<int>(rows[0].size()), static_cast<int>(rows.size()), 1);
  for (size_t y = 0; y < rows.size(); ++y)
    for (size_t x = 0; x < rows[y].size(); ++x) m.data[y * rows[0].size() + x] = static_cast<uint8_t>(rows[y][x] - '0');
  return m;
}
}  // namespace

TEST(Jaccard, HandComputed) {
  const Image a = mask_from_rows({"1100", "1100", "0000"});
  const Image b = mask_from_rows({"0110", "0110", "0000"});
  EXPECT_DOUBLE_EQ(davis_jaccard(a, b), 2.0 / 6.0);
  const Image empty(4, 3, 1, 0);
  EXPECT_DOUBLE_EQ(davis_jaccard(empty, empty), 1.0);
  EXPECT_DOUBLE_EQ(davis_jaccard(a, empty), 0.0);
}

TEST(BoundaryF, EmptyCasesFollowTheDefinition) {
  const Image empty(20, 20, 1, 0);
  Image box(20, 20, 1, 0);
  for (int y = 5; y < 10; ++y) for (int x = 5; x < 10; ++x) box.px(x, y)[0] = 1;
  EXPECT_DOUBLE_EQ(davis_boundary_f(empty, empty), 1.0);   // neither has a boundary
  EXPECT_DOUBLE_EQ(davis_boundary_f(empty, box), 0.0);     // only one is empty
  EXPECT_DOUBLE_EQ(davis_boundary_f(box, empty), 0.0);
  EXPECT_DOUBLE_EQ(davis_boundary_f(box, box), 1.0);
}

TEST(BoundaryF, ToleranceAndPrecisionRecallByHand) {
  // 100x1 image: diagonal 100.005 -> r = ceil(0.8) = 1 pixel. Boundaries (east neighbour only,
  // last row): gt object x in [10,20) -> boundary at x = 9 and 19; prediction [12,20) -> 11, 19.
  Image gt(100, 1, 1, 0), pred(100, 1, 1, 0);
  for (int x = 10; x < 20; ++x) gt.data[x] = 1;
  for (int x = 12; x < 20; ++x) pred.data[x] = 1;
  // Pred boundary 11 is 2 px from 9 (> r): P = 1/2; R = 1/2 -> F = 0.5.
  EXPECT_DOUBLE_EQ(davis_boundary_f(pred, gt), 0.5);
  // With a 2 px tolerance both match.
  EXPECT_DOUBLE_EQ(davis_boundary_f(pred, gt, 2.0), 1.0);
}

TEST(BoundaryF, LastRowAndColumnRules) {
  // The last row compares east only, the last column south only, the corner never counts:
  // a mask covering the whole frame has no boundary at all, so against an empty mask F = 1.
  const Image full(5, 5, 1, 1), empty(5, 5, 1, 0);
  EXPECT_DOUBLE_EQ(davis_boundary_f(full, empty), 1.0);
  EXPECT_DOUBLE_EQ(davis_jaccard(full, empty), 0.0);
  // Only the last column set: its own pixels compare south (equal) -> no boundary there; the
  // column left of it differs east -> a boundary, so F against empty is 0.
  Image col(5, 5, 1, 0);
  for (int y = 0; y < 5; ++y) col.px(4, y)[0] = 1;
  EXPECT_DOUBLE_EQ(davis_boundary_f(col, empty), 0.0);
  // ...and it matches a mask whose boundary is the same column 3 (the last two columns set).
  Image two(5, 5, 1, 0);
  for (int y = 0; y < 5; ++y) two.px(3, y)[0] = two.px(4, y)[0] = 1;
  // two's boundary: column 2 (east differs); col's: column 3; r = ceil(0.008*7.07) = 1 -> match.
  EXPECT_DOUBLE_EQ(davis_boundary_f(col, two), 1.0);
}

TEST(Statistics, DecayBinsAndRecall) {
  std::vector<double> v(10);
  for (int i = 0; i < 10; ++i) v[size_t(i)] = i / 10.0;
  const auto s = davis_statistics(v);
  EXPECT_NEAR(s.mean, 0.45, 1e-12);
  EXPECT_NEAR(s.recall, 0.4, 1e-12);  // 0.6 .. 0.9
  // ids = round(linspace(1,10,5)) - 1 = [0,2,5,7,9]: bins [0..2] and [7..9].
  EXPECT_NEAR(s.decay, (0.0 + 0.1 + 0.2) / 3 - (0.7 + 0.8 + 0.9) / 3, 1e-12);
  std::vector<double> with_nan{1.0, std::nan(""), 0.0};
  EXPECT_NEAR(davis_statistics(with_nan).mean, 0.5, 1e-12);
}

namespace {

void expect_matches_reference(const std::string& set, const std::string& variant) {
  const std::string data = corrtrack::test::data_dir(), fixtures = corrtrack::test::fixtures_dir();
  const std::string pred = fixtures + "/jf-reference/" + set + "/" + variant;
  std::ifstream f(fixtures + "/jf-reference/" + set + "/" + variant + ".official.json");
  ASSERT_TRUE(f) << "missing reference json for " << set << "/" << variant;
  const auto ref = nlohmann::json::parse(f);
  std::vector<std::string> seqs;
  for (const auto& e : std::filesystem::directory_iterator(pred)) if (e.is_directory()) seqs.push_back(e.path().filename().string());
  std::sort(seqs.begin(), seqs.end());
  const DavisEvaluation ev = davis_evaluate(data + "/" + set, pred, seqs);
  for (const auto& [key, value] : ref["global"].items()) {
    EXPECT_NEAR(ev.global_value(key), value.get<double>(), 1e-6) << set << "/" << variant << " " << key;
  }
  size_t matched = 0;
  for (const auto& [name, jf] : ev.per_object) {
    ASSERT_TRUE(ref["per_object"].contains(name)) << name;
    EXPECT_NEAR(jf.first, ref["per_object"][name]["J-Mean"].get<double>(), 1e-6) << name;
    EXPECT_NEAR(jf.second, ref["per_object"][name]["F-Mean"].get<double>(), 1e-6) << name;
    ++matched;
  }
  EXPECT_EQ(matched, ref["per_object"].size());
  for (const auto& s : ev.sequences) {
    const auto& rj = ref["per_frame"][s.name]["J"];
    const auto& rf = ref["per_frame"][s.name]["F"];
    ASSERT_EQ(rj.size(), s.J.size()) << s.name;
    for (size_t o = 0; o < s.J.size(); ++o) {
      ASSERT_EQ(rj[o].size(), s.J[o].size()) << s.name;
      for (size_t t = 0; t < s.J[o].size(); ++t) {
        EXPECT_NEAR(s.J[o][t], rj[o][t].get<double>(), 1e-6) << s.name << " object " << o + 1 << " frame " << t + 1;
        EXPECT_NEAR(s.F[o][t], rf[o][t].get<double>(), 1e-6) << s.name << " object " << o + 1 << " frame " << t + 1;
      }
    }
  }
}

}  // namespace

class JFReference : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(JFReference, MatchesOfficialCode) {
  CORRTRACK_REQUIRE_DATA(data);
  CORRTRACK_REQUIRE_FIXTURES(fixtures);
  expect_matches_reference(GetParam().first, GetParam().second);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, JFReference,
    ::testing::Values(std::make_pair("davis2016-val-dev", "static"), std::make_pair("davis2016-val-dev", "shift"),
                      std::make_pair("davis2016-train-240p", "static"), std::make_pair("labelme-street-2obj", "static"),
                      std::make_pair("labelme-street-2obj", "empty")),
    [](const auto& info) {
      std::string n = std::string(info.param.first) + "_" + info.param.second;
      for (auto& c : n) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return n;
    });

TEST(DavisEval, ObjectIndexAboveAnnotationIsAnError) {
  CORRTRACK_REQUIRE_DATA(data);
  corrtrack::test::TempDir dir;
  const std::string seq = "street_truck";
  std::filesystem::create_directories(dir / seq);
  const std::string ann = data + "/labelme-street-2obj/Annotations/" + seq;
  for (const auto& e : std::filesystem::directory_iterator(ann)) {
    Image m = mask_read(e.path().string());
    m.data[0] = 3;  // the annotation has 2 objects
    mask_write(dir / (seq + "/" + e.path().filename().string()), m);
  }
  try {
    davis_evaluate(data + "/labelme-street-2obj", dir.path(), {seq});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("object index 3"), std::string::npos) << e.what();
  }
}
