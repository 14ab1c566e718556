// Contrastive core: losses and measures against answers computed by hand or by the definition.
#include <gtest/gtest.h>

#include "corrtrack/contrastive.h"
#include "corrtrack/core.h"
#include "corrtrack/train.h"

#include <cmath>
#include <functional>

using namespace corrtrack;

namespace {
// Autograd's gradient of f at x equals central finite differences, element by element.
void expect_gradient_matches(const std::function<torch::Tensor(const torch::Tensor&)>& f, const torch::Tensor& x0) {
  auto x = x0.detach().clone().requires_grad_(true);
  f(x).backward();
  const auto g = x.grad();
  const double h = 1e-6;
  auto flat = x0.detach().reshape({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    auto xp = flat.clone(), xm = flat.clone();
    xp[i] += h;
    xm[i] -= h;
    const double fd = (f(xp.view_as(x0)).item<double>() - f(xm.view_as(x0)).item<double>()) / (2 * h);
    EXPECT_NEAR(g.reshape({-1})[i].item<double>(), fd, 1e-6) << "element " << i;
  }
}

torch::Tensor unit_rows(const torch::Tensor& x) { return x / x.norm(2, -1, true); }
}  // namespace

TEST(InfoNCE, EqualLogitsGiveLogN) {
  for (int K : {2, 7, 100}) {
    auto logits = torch::full({5, K}, 0.3);
    auto targets = torch::zeros({5}, torch::kLong);
    EXPECT_NEAR(info_nce_loss(logits, targets).item<double>(), std::log(double(K)), 1e-6);
  }
  // One row by hand: logits (2, 0, 0), target 0 -> -log(e^2 / (e^2 + 2)).
  auto l = info_nce_loss(torch::tensor({{2.0f, 0.0f, 0.0f}}), torch::tensor({0}, torch::kLong)).item<double>();
  EXPECT_NEAR(l, std::log(1.0 + 2.0 / std::exp(2.0)), 1e-6);
}

TEST(NTXent, HandComputedOrthogonalViews) {
  // Views equal, the two samples orthogonal, tau = 1: each row sees its positive at 1 and two
  // negatives at 0 -> loss = log(1 + 2/e).
  auto z = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}});
  EXPECT_NEAR(nt_xent_loss(z, z.clone(), 1.0).item<double>(), std::log(1.0 + 2.0 / std::exp(1.0)), 1e-6);
  // A single pair: the positive is the only candidate -> 0.
  auto a = torch::tensor({{0.3f, -1.0f}}), b = torch::tensor({{2.0f, 5.0f}});
  EXPECT_NEAR(nt_xent_loss(a, b, 0.5).item<double>(), 0.0, 1e-6);
}

TEST(NTXent, GradientMatchesFiniteDifferences) {
  torch::manual_seed(1);
  auto z2 = torch::randn({4, 3}, torch::kDouble);
  expect_gradient_matches([&](const torch::Tensor& z1) { return nt_xent_loss(z1, z2, 0.5); }, torch::randn({4, 3}, torch::kDouble));
}

TEST(NCE, HalfwayScoresGiveOnePlusKLog2) {
  // s = k·Pn makes h = 1/2 for data and noise alike: loss = (1 + k)·log 2.
  const int k = 4;
  const double pn = 0.01;
  auto pos = torch::full({3}, k * pn, torch::kDouble), noise = torch::full({3, k}, k * pn, torch::kDouble);
  EXPECT_NEAR(nce_loss(pos, noise, pn).item<double>(), (1 + k) * std::log(2.0), 1e-12);
  // Confident model: large data score, tiny noise scores -> loss near 0.
  EXPECT_LT(nce_loss(torch::full({3}, 1e6, torch::kDouble), torch::full({3, k}, 1e-9, torch::kDouble), pn).item<double>(), 1e-3);
}

TEST(SupCon, EqualsNTXentWhenLabelsPairTheViews) {
  // Labels (0, 1, 0, 1) on (e1, e2, e1, e2) are exactly SimCLR's two views of two samples.
  auto z = torch::tensor({{1.0, 0.0}, {0.0, 1.0}, {1.0, 0.0}, {0.0, 1.0}}, torch::kDouble);
  auto labels = torch::tensor({0, 1, 0, 1}, torch::kLong);
  EXPECT_NEAR(supcon_loss(z, labels, 1.0).item<double>(), std::log(1.0 + 2.0 / std::exp(1.0)), 1e-12);
  EXPECT_NEAR(supcon_loss(z, labels, 1.0).item<double>(), nt_xent_loss(z.narrow(0, 0, 2), z.narrow(0, 2, 2), 1.0).item<double>(), 1e-12);
  EXPECT_THROW(supcon_loss(z, torch::tensor({0, 1, 2, 3}, torch::kLong), 1.0), Error);
}

TEST(NPair, OrthonormalPairsByHand) {
  // a = p = identity (N = 3): l_ii = 1, l_ij = 0 -> log(1 + 2/e).
  auto a = torch::eye(3, torch::kDouble);
  EXPECT_NEAR(npair_loss(a, a).item<double>(), std::log(1.0 + 2.0 / std::exp(1.0)), 1e-12);
}

TEST(Sinkhorn, MarginalsAreEquipartition) {
  torch::manual_seed(2);
  auto scores = torch::randn({32, 8}, torch::kDouble);
  auto Q = sinkhorn_knopp(scores, 0.5, 100);
  EXPECT_LT((Q.sum(1) - 1.0).abs().max().item<double>(), 1e-4);         // each sample a distribution
  EXPECT_LT((Q.sum(0) - 32.0 / 8.0).abs().max().item<double>(), 1e-4);  // each cluster B/K samples
  // Order of the scores is kept within a row: the best cluster keeps the largest share.
  EXPECT_TRUE(torch::all(Q.min() >= 0).item<bool>());
}

// Regression: SeLa's setting (eps 1/25 over a whole set) with samples whose scores lie far below
// the best sample's. Computed with exp() directly these underflowed to zero columns and the
// scaling produced NaN (every pseudo-label became cluster 0); the result must stay finite, keep
// the marginals, and give each sample its own best cluster when the clusters are balanced.
TEST(Sinkhorn, FarApartScoresStayFinite) {
  auto scores = torch::zeros({6, 3});
  for (int i = 0; i < 6; ++i) {
    const float base = i < 3 ? 0.0f : -40.0f;  // half the samples score 40 below the others
    for (int k = 0; k < 3; ++k) scores[i][k] = base + (k == i % 3 ? 2.0f : 0.0f);
  }
  auto Q = sinkhorn_knopp(scores, 1.0 / 25.0, 10);
  EXPECT_TRUE(torch::isfinite(Q).all().item<bool>());
  EXPECT_LT((Q.sum(1) - 1.0).abs().max().item<double>(), 1e-4);
  EXPECT_LT((Q.sum(0) - 2.0).abs().max().item<double>(), 1e-4);
  auto best = Q.argmax(1);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(best[i].item<int64_t>(), i % 3) << i;
}

TEST(IIC, MutualInformationOfPerfectAndIndependentAssignments) {
  // Confident, evenly spread, identical assignments: I = log C.
  auto onehot = torch::eye(4, torch::kDouble).repeat({3, 1});
  EXPECT_NEAR(iic_loss(onehot, onehot).item<double>(), -std::log(4.0), 1e-6);
  // Uniform assignments carry no information: I = 0.
  auto uniform = torch::full({12, 4}, 0.25, torch::kDouble);
  EXPECT_NEAR(iic_loss(uniform, uniform).item<double>(), 0.0, 1e-9);
}

TEST(IIC, GradientMatchesFiniteDifferences) {
  torch::manual_seed(3);
  auto p2 = torch::softmax(torch::randn({6, 3}, torch::kDouble), 1);
  expect_gradient_matches([&](const torch::Tensor& logits) { return iic_loss(torch::softmax(logits, 1), p2); },
                          torch::randn({6, 3}, torch::kDouble));
}

TEST(KeyQueue, IsFifoAndCarriesNoGradient) {
  KeyQueue q(5, 2);
  auto a = torch::tensor({{1.0f, 0.0f}, {2.0f, 0.0f}, {3.0f, 0.0f}}).requires_grad_(true);
  q.enqueue(a * 1.0);
  EXPECT_EQ(q.pointer(), 3);
  q.enqueue(torch::tensor({{4.0f, 0.0f}, {5.0f, 0.0f}, {6.0f, 0.0f}}));
  EXPECT_EQ(q.pointer(), 1);
  // Slot 0 was overwritten by the newest key (6), slots 1..4 hold 2, 3, 4, 5: key 1 left first.
  auto col = q.keys().select(1, 0);
  EXPECT_TRUE(torch::equal(col, torch::tensor({6.0f, 2.0f, 3.0f, 4.0f, 5.0f})));
  EXPECT_FALSE(q.keys().requires_grad());
}

TEST(EMA, UpdateEqualsFormulaAndScheduleEnds) {
  torch::nn::Linear target(2, 2), online(2, 2);
  auto t0 = target->weight.detach().clone(), o0 = online->weight.detach().clone();
  ema_update(*target, *online, 0.9);
  EXPECT_TRUE(torch::allclose(target->weight, 0.9 * t0 + 0.1 * o0));
  EXPECT_NEAR(byol_momentum(0, 100, 0.996), 0.996, 1e-12);
  EXPECT_NEAR(byol_momentum(100, 100, 0.996), 1.0, 1e-12);
  EXPECT_NEAR(byol_momentum(50, 100, 0.996), 0.998, 1e-12);
}

TEST(NMI, PermutedLabelsAndIndependentLabels) {
  auto a = torch::tensor({0, 0, 1, 1, 2, 2}, torch::kLong);
  auto b = torch::tensor({5, 5, 3, 3, 9, 9}, torch::kLong);  // same partition, other names
  EXPECT_NEAR(normalised_mutual_info(a, b), 1.0, 1e-12);
  auto x = torch::tensor({0, 0, 1, 1}, torch::kLong), y = torch::tensor({0, 1, 0, 1}, torch::kLong);
  EXPECT_NEAR(normalised_mutual_info(x, y), 0.0, 1e-12);
  // By hand: a = (0,0,1,1), b = (0,0,0,1): I = 1.5 log 1.5 ... = 0.2158 nats; H(a) = log 2,
  // H(b) = 0.5623 -> NMI = 0.2158 / sqrt(0.6931 * 0.5623).
  auto c = torch::tensor({0, 0, 0, 1}, torch::kLong);
  const double I = 0.5 * std::log(0.5 / (0.5 * 0.75)) + 0.25 * std::log(0.25 / (0.5 * 0.75)) + 0.25 * std::log(0.25 / (0.5 * 0.25));
  const double Hb = -(0.75 * std::log(0.75) + 0.25 * std::log(0.25));
  EXPECT_NEAR(normalised_mutual_info(x, c), I / std::sqrt(std::log(2.0) * Hb), 1e-12);
}

TEST(KNN, WeightedVoteByHand) {
  // Train: class 0 near +x, class 1 near +y. A test point at 30 degrees from x is class 0 with
  // k = 1; with k = 3 and a sharp temperature the nearest neighbour still dominates.
  auto train = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {0.1f, 1.0f}});
  auto labels = torch::tensor({0, 1, 1}, torch::kLong);
  auto test = torch::tensor({{std::cos(0.5236f), std::sin(0.5236f)}});
  EXPECT_DOUBLE_EQ(knn_top1(train, labels, test, torch::tensor({0}, torch::kLong), 1, 0.07, 2), 1.0);
  EXPECT_DOUBLE_EQ(knn_top1(train, labels, test, torch::tensor({0}, torch::kLong), 3, 0.07, 2), 1.0);
  // With a flat temperature two class-1 neighbours outvote one class-0 neighbour.
  EXPECT_DOUBLE_EQ(knn_top1(train, labels, test, torch::tensor({1}, torch::kLong), 3, 100.0, 2), 1.0);
}

// ---------------------------------------------------------------------------------------------
// Losses of the image methods, by hand
// ---------------------------------------------------------------------------------------------

// BYOL: 2 - 2 cos is 0 for aligned, 2 for orthogonal, 4 for opposite vectors (scale-free).
TEST(ByolLoss, KnownAngles) {
  auto p = torch::tensor({{1.0f, 0.0f}});
  EXPECT_NEAR(byol_loss(p, torch::tensor({{3.0f, 0.0f}})).item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(byol_loss(p, torch::tensor({{0.0f, 2.0f}})).item<double>(), 2.0, 1e-6);
  EXPECT_NEAR(byol_loss(p, torch::tensor({{-1.0f, 0.0f}})).item<double>(), 4.0, 1e-6);
}

// SwAV: equal scores give log K for any codes; a one-hot code on scores (1, 0) at tau 1 gives
// -log(e / (e + 1)) = log(1 + 1/e).
TEST(SwappedPrediction, KnownValues) {
  auto codes = torch::tensor({{0.2f, 0.3f, 0.5f}});
  EXPECT_NEAR(swapped_prediction_loss(torch::zeros({1, 3}), codes, 0.1).item<double>(), std::log(3.0), 1e-6);
  EXPECT_NEAR(swapped_prediction_loss(torch::tensor({{1.0f, 0.0f}}), torch::tensor({{1.0f, 0.0f}}), 1.0).item<double>(),
              std::log(1.0 + std::exp(-1.0)), 1e-6);
}

// ProtoNCE: q = e1 against prototypes e1, e2 with concentration 1 and target 0 is log(1 + 1/e);
// halving the target's concentration sharpens it to log(1 + e^-2).
TEST(ProtoNce, KnownValues) {
  auto q = torch::tensor({{1.0f, 0.0f}});
  auto protos = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}});
  auto target = torch::tensor({0}, torch::kLong);
  EXPECT_NEAR(proto_nce_loss(q, protos, torch::tensor({1.0f, 1.0f}), target).item<double>(), std::log(1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(proto_nce_loss(q, protos, torch::tensor({0.5f, 1.0f}), target).item<double>(), std::log(1.0 + std::exp(-2.0)), 1e-6);
}

// NPID's bank: row (1, 0) with v = (0, 1) at momentum 0.5 becomes (1, 1)/sqrt(2); other rows untouched.
TEST(MemoryBank, UpdateFormula) {
  auto bank = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}});
  memory_bank_update(bank, torch::tensor({0}, torch::kLong), torch::tensor({{0.0f, 1.0f}}), 0.5);
  EXPECT_NEAR(bank[0][0].item<float>(), std::sqrt(0.5), 1e-6);
  EXPECT_NEAR(bank[0][1].item<float>(), std::sqrt(0.5), 1e-6);
  EXPECT_FLOAT_EQ(bank[1][1].item<float>(), 1.0f);
}

// DeepCluster's fix: a centre that wins no point (100, far from 0, 1, 10, 11) is re-seeded with
// a data point, and Lloyd ends at {0}, {1}, {10, 11}: centres 0, 1, 10.5, none empty.
TEST(KMeansLloyd, EmptyClusterIsReseeded) {
  auto x = torch::tensor({0.0f, 1.0f, 10.0f, 11.0f}).view({4, 1});
  auto c = kmeans_lloyd(x, torch::tensor({0.5f, 10.5f, 100.0f}).view({3, 1}), 10);
  auto sorted = std::get<0>(c.view({3}).sort());
  EXPECT_FLOAT_EQ(sorted[0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(sorted[1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(sorted[2].item<float>(), 10.5f);
  auto counts = torch::bincount(kmeans_assign(x, c), {}, 3);
  EXPECT_TRUE((counts > 0).all().item<bool>());
}

// Contrastive random walk: identity transitions return every node (loss ~ 0), uniform ones give
// log N for every walk length, and the two-node case matches the matrix powers by hand.
TEST(RandomWalk, IdentityUniformAndHandComputed) {
  auto onehot = torch::eye(5).unsqueeze(0).repeat({2, 1, 1});  // B 2, N 5, C 5
  auto id = random_walk_loss({onehot, onehot, onehot, onehot}, 0.05);
  EXPECT_LT(id.loss.item<double>(), 1e-6);
  ASSERT_EQ(id.per_length.size(), 3u);
  for (double a : id.accuracy) EXPECT_EQ(a, 1.0);

  auto same = torch::ones({2, 6, 3}) / std::sqrt(3.0);
  auto uni = random_walk_loss({same, same, same}, 0.07);
  for (double l : uni.per_length) EXPECT_NEAR(l, std::log(6.0), 1e-5);
  EXPECT_NEAR(uni.loss.item<double>(), std::log(6.0), 1e-5);

  // Two orthogonal nodes, tau 1: every transition is M = [[p, 1-p], [1-p, p]], p = e / (e + 1).
  // Length 1 walks M·M: P_ii = p² + (1-p)²; length 2 walks M⁴: P_ii = (1 + (2p - 1)⁴) / 2.
  auto two = torch::eye(2).unsqueeze(0).to(torch::kDouble);
  auto hand = random_walk_loss({two, two, two}, 1.0);
  const double p = std::exp(1.0) / (std::exp(1.0) + 1.0);
  EXPECT_NEAR(hand.per_length[0], -std::log(p * p + (1 - p) * (1 - p)), 1e-9);
  EXPECT_NEAR(hand.per_length[1], -std::log((1 + std::pow(2 * p - 1, 4)) / 2), 1e-9);
  EXPECT_NEAR(hand.loss.item<double>(), (hand.per_length[0] + hand.per_length[1]) / 2, 1e-12);
}

TEST(RandomWalk, GradientMatchesFiniteDifferences) {
  torch::manual_seed(3);
  auto x1 = torch::randn({1, 3, 2}, torch::kDouble), x2 = torch::randn({1, 3, 2}, torch::kDouble);
  expect_gradient_matches([&](const torch::Tensor& x0) { return random_walk_loss({x0, x1, x2}, 0.5).loss; },
                          torch::randn({1, 3, 2}, torch::kDouble));
}

// Edge dropout is drawn from the generator (reproducible), keeps the loss finite even when whole
// rows are dropped, and is refused without a generator.
TEST(RandomWalk, EdgeDropoutIsSeededAndFinite) {
  torch::manual_seed(4);
  auto a = unit_rows(torch::randn({2, 16, 8})), b = unit_rows(torch::randn({2, 16, 8}));
  auto run = [&](uint64_t seed, double p) {
    torch::Generator g(at::make_generator<at::CPUGeneratorImpl>(seed));
    return random_walk_loss({a, b, a}, 0.05, p, &g).loss.item<double>();
  };
  EXPECT_EQ(run(7, 0.3), run(7, 0.3));
  EXPECT_NE(run(7, 0.3), run(8, 0.3));
  EXPECT_TRUE(std::isfinite(run(1, 0.99)));
  EXPECT_THROW(random_walk_loss({a, b}, 0.05, 0.1, nullptr), Error);
  EXPECT_THROW(random_walk_loss({a}, 0.05), Error);
}
