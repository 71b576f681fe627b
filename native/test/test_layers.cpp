// Standalone layer tests (no Node): every layer's backward against central finite
// differences of L = sum(g * forward(x)) for a random upstream gradient g, the
// im2col convolution against a direct loop, and the SGD rule against its formula.
// Run: native/build/test_layers  (prints "N passed, N failed"; exit 1 on failure).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>

#include "check.h"
#include "layers.h"
#include "winograd.h"
#include "rng.h"

using namespace alexnet;
using Vec = std::vector<float>;

static std::mt19937 rng_engine(1234);
static Vec randn(size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  Vec v(n);
  for (auto& x : v) x = d(rng_engine);
  return v;
}
static double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += (double)a[i] * b[i];
  return s;
}

// Finite-difference gradient of f (a scalar of x) at every element of x (or `samples`
// evenly spread ones), compared with `analytic` by relative 2-norm distance.
static void gradcheck(const char* what, Vec& x, const Vec& analytic,
                      const std::function<double()>& f, float eps = 1e-2f, double tol = 1e-2,
                      size_t samples = 400) {
  std::vector<double> num, ana;
  const size_t stride = std::max<size_t>(1, x.size() / samples);
  for (size_t i = 0; i < x.size(); i += stride) {
    const float keep = x[i];
    x[i] = keep + eps;
    const double up = f();
    x[i] = keep - eps;
    const double down = f();
    x[i] = keep;
    num.push_back((up - down) / (2.0 * eps));
    ana.push_back(analytic[i]);
  }
  const double d = rel_distance(num, ana);
  CHECK(d < tol, "%s: finite differences differ from the backward by %.3g (tol %.3g)", what, d, tol);
  std::printf("gradcheck %-28s rel %.2e over %zu elements\n", what, d, num.size());
}

static void test_conv(int N, int C, int H, int W, int O, int K, int S, int P, int G,
                      size_t samples = 400) {
  char name[96];
  std::snprintf(name, sizeof name, "conv N%d C%d %dx%d O%d K%d S%d P%d G%d", N, C, H, W, O, K, S, P, G);
  const int OH = conv_out_size(H, K, S, P), OW = conv_out_size(W, K, S, P);
  Vec x = randn((size_t)N * C * H * W), w = randn((size_t)O * (C / G) * K * K, 0.3f),
      b = randn(O), g = randn((size_t)N * O * OH * OW), y(g.size());
  Scratch s;
  auto f = [&] {
    conv_forward(y.data(), x.data(), w.data(), b.data(), N, C, H, W, O, K, S, P, G, s);
    return dot(g, y);
  };
  f();
  // Direct convolution as the reference for the forward.
  double max_err = 0;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < O; o++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          const int grp = o / (O / G), Cg = C / G;
          double acc = b[o];
          for (int c = 0; c < Cg; c++)
            for (int kh = 0; kh < K; kh++)
              for (int kw = 0; kw < K; kw++) {
                const int ih = oh * S - P + kh, iw = ow * S - P + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += (double)x[(((size_t)n * C + grp * Cg + c) * H + ih) * W + iw] *
                       w[(((size_t)o * Cg + c) * K + kh) * K + kw];
              }
          max_err = std::max(max_err,
                             std::fabs(acc - y[(((size_t)n * O + o) * OH + oh) * OW + ow]));
        }
  CHECK(max_err < 1e-3, "%s: forward differs from the direct loop by %g", name, max_err);
  Vec dx(x.size()), dw(w.size()), db(b.size());
  conv_backward(dx.data(), dw.data(), db.data(), g.data(), x.data(), w.data(), N, C, H, W, O, K, S,
                P, G, s);
  std::string n(name);
  gradcheck((n + " dinp").c_str(), x, dx, f, 1e-2f, 1e-2, samples);
  gradcheck((n + " dweight").c_str(), w, dw, f, 1e-2f, 1e-2, samples);
  gradcheck((n + " dbias").c_str(), b, db, f, 1e-2f, 1e-2, samples);
}

// The ways conv computes agree to 1e-5 relative with im2col over chunks of images (what it
// does with fewer images than threads): im2col per image (an image per thread), and
// Winograd F(2x2, 3x3) for 3x3 stride-1 kernels. Both give the same bits with 1, 2 or 3
// threads (their gradient sums do not depend on the thread count).
enum class ConvWay { PerImage, Winograd };
static void test_conv_ways(ConvWay way, int N, int C, int H, int W, int O, int K, int S, int P, int G) {
  const char* way_name = way == ConvWay::Winograd ? "winograd" : "per image";
  char name[96];
  std::snprintf(name, sizeof name, "%s N%d C%d %dx%d O%d K%d S%d P%d G%d", way_name, N, C, H, W, O, K, S, P, G);
  const int OH = conv_out_size(H, K, S, P), OW = conv_out_size(W, K, S, P);
  Vec x = randn((size_t)N * C * H * W), w = randn((size_t)O * (C / G) * K * K, 0.3f), b = randn(O),
      g = randn((size_t)N * O * OH * OW);
  struct Result { Vec y, dx, dw, db; };
  auto run = [&](int threads, bool reference) {
    set_compute_threads(threads);
    Result r{Vec(g.size()), Vec(x.size()), Vec(w.size()), Vec(b.size())};
    Scratch s;
    if (way == ConvWay::Winograd && !reference) {
      winograd_conv_forward(r.y.data(), x.data(), w.data(), b.data(), N, C, H, W, O, P, G, s);
      winograd_conv_backward(r.dx.data(), r.dw.data(), r.db.data(), g.data(), x.data(), w.data(), N, C, H, W, O, P, G, s);
    } else {
      conv_forward_im2col(r.y.data(), x.data(), w.data(), b.data(), N, C, H, W, O, K, S, P, G, s);
      conv_backward_im2col(r.dx.data(), r.dw.data(), r.db.data(), g.data(), x.data(), w.data(), N, C, H, W, O, K, S, P, G, s);
    }
    return r;
  };
  // im2col goes per image with at least an image per thread, chunked with fewer.
  const int most = way == ConvWay::PerImage ? N : 3;
  const Result one = run(1, false), two = run(std::min(2, most), false), three = run(std::min(3, most), false),
               chunked = run(N + 1, true);
  set_compute_threads(0);
  auto rel = [](const Vec& a, const Vec& c) {
    return rel_distance(std::vector<double>(a.begin(), a.end()), std::vector<double>(c.begin(), c.end()));
  };
  const double d = std::max({rel(one.y, chunked.y), rel(one.dx, chunked.dx), rel(one.dw, chunked.dw),
                             rel(one.db, chunked.db)});
  CHECK(d < 1e-5, "%s: differs from im2col over chunks by %.3g relative", name, d);
  const bool same = one.y == two.y && one.dx == two.dx && one.dw == two.dw && one.db == two.db &&
                    one.y == three.y && one.dx == three.dx && one.dw == three.dw && one.db == three.db;
  CHECK(same, "%s: the same bits with 1, 2 and 3 threads", name);
  std::printf("%-44s vs im2col over chunks %.2e relative\n", name, d);
}

static void test_relu() {
  Vec x = randn(300);
  for (auto& v : x) v += v > 0 ? 0.05f : -0.05f;  // keep clear of the kink
  Vec g = randn(300), y(300), dx(300);
  auto f = [&] {
    relu_forward(y.data(), x.data(), (int64_t)x.size());
    return dot(g, y);
  };
  f();
  relu_backward(dx.data(), g.data(), y.data(), (int64_t)x.size());
  gradcheck("relu", x, dx, f, 1e-2f);
}

static void test_lrn(float alpha, float beta, int G) {
  const int N = 2, C = 8, H = 3, W = 4, size = 5;
  const float k = 2.0f;
  Vec x = randn((size_t)N * C * H * W, 3.0f), g = randn(x.size()), y(x.size()), s(x.size()),
      dx(x.size());
  auto f = [&] {
    lrn_forward(y.data(), s.data(), x.data(), N, C, H, W, G, size, alpha, beta, k);
    return dot(g, y);
  };
  f();
  // The paper's formula element by element, as a reference for the forward.
  double max_err = 0;
  const int Cb = C / G;
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
      for (int p = 0; p < H * W; p++) {
        const int b0 = c / Cb * Cb;
        double sum = 0;
        for (int j = std::max(b0, c - size / 2); j <= std::min(b0 + Cb - 1, c + size / 2); j++) {
          const double a = x[((size_t)n * C + j) * H * W + p];
          sum += a * a;
        }
        const size_t i = ((size_t)n * C + c) * H * W + p;
        max_err = std::max(max_err, std::fabs(x[i] / std::pow(k + alpha * sum, beta) - y[i]));
      }
  CHECK(max_err < 1e-5, "lrn alpha=%g: forward differs from the formula by %g", alpha, max_err);
  lrn_backward(dx.data(), g.data(), x.data(), y.data(), s.data(), N, C, H, W, G, size, alpha, beta);
  char name[64];
  std::snprintf(name, sizeof name, "lrn alpha=%g beta=%g G=%d", alpha, beta, G);
  gradcheck(name, x, dx, f, 1e-2f);
}

static void test_maxpool(int H, int W, int K, int S) {
  const int N = 2, C = 3, OH = (H - K) / S + 1, OW = (W - K) / S + 1;
  // Distinct values spaced 0.1 apart, so a step of eps never changes the winner.
  Vec x((size_t)N * C * H * W);
  for (size_t i = 0; i < x.size(); i++) x[i] = 0.1f * (float)i;
  std::shuffle(x.begin(), x.end(), rng_engine);
  Vec g = randn((size_t)N * C * OH * OW), y(g.size()), dx(x.size());
  std::vector<int32_t> idx(g.size());
  auto f = [&] {
    maxpool_forward(y.data(), idx.data(), x.data(), N, C, H, W, K, S);
    return dot(g, y);
  };
  f();
  maxpool_backward(dx.data(), g.data(), idx.data(), N, C, H, W, K, S);
  char name[64];
  std::snprintf(name, sizeof name, "maxpool %dx%d K%d S%d", H, W, K, S);
  gradcheck(name, x, dx, f, 1e-2f);
}

// The vectorized forward against the plain loop it replaced: every output scans its taps
// in (kh, kw) order, the first maximum wins a tie (0 and -0 too) and the first NaN wins and
// propagates. Values from a tiny set, so ties and NaNs are everywhere; every K and S here.
static void test_maxpool_matches_plain_loop() {
  std::uniform_int_distribution<int> pick(0, 5);
  int differing = 0, cases = 0;
  for (int K = 1; K <= 4; K++)
    for (int S = 1; S <= 3; S++)
      for (int H = K; H <= 20; H += 3) {
        const int N = 2, C = 3, W = H + 1, OH = (H - K) / S + 1, OW = (W - K) / S + 1;
        Vec x((size_t)N * C * H * W);
        for (auto& v : x) {
          const int r = pick(rng_engine);
          v = r == 0 ? NAN : r == 1 ? 0.0f : r == 2 ? -0.0f : (float)(pick(rng_engine) - 2);
        }
        Vec y((size_t)N * C * OH * OW), ref(y.size());
        std::vector<int32_t> idx(y.size()), ref_idx(y.size());
        maxpool_forward(y.data(), idx.data(), x.data(), N, C, H, W, K, S);
        for (int p = 0; p < N * C; p++)
          for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
              const float* a = x.data() + (size_t)p * H * W;
              int best = oh * S * W + ow * S;
              float m = a[best];
              for (int kh = 0; kh < K; kh++)
                for (int kw = 0; kw < K; kw++) {
                  const int i = (oh * S + kh) * W + ow * S + kw;
                  if (a[i] > m || (std::isnan(a[i]) && !std::isnan(m))) m = a[i], best = i;
                }
              ref[((size_t)p * OH + oh) * OW + ow] = m;
              ref_idx[((size_t)p * OH + oh) * OW + ow] = best;
            }
        cases++;
        if (std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)) || idx != ref_idx) {
          differing++;
          std::fprintf(stderr, "maxpool K%d S%d %dx%d differs from the plain loop\n", K, S, H, W);
        }
      }
  CHECK(differing == 0, "maxpool forward: %d of %d shapes differ from the plain loop (values or argmax)", differing, cases);
}

// N 3: the weight-streaming forward (small batches); N 40: SGEMM. I 37: a tail past the
// 16 lanes.
static void test_linear(int N, int I = 37, int O = 7) {
  char name[64];
  Vec x = randn((size_t)N * I), w = randn((size_t)O * I), b = randn(O), g = randn((size_t)N * O),
      y(g.size()), dx(x.size()), dw(w.size()), db(b.size());
  auto f = [&] {
    linear_forward(y.data(), x.data(), w.data(), b.data(), N, I, O);
    return dot(g, y);
  };
  f();
  double max_err = 0;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < O; o++) {
      double acc = b[o], scale = std::fabs(b[o]);  // scale: the sum of |terms|, what rounding grows with
      for (int i = 0; i < I; i++) {
        acc += (double)x[(size_t)n * I + i] * w[(size_t)o * I + i];
        scale += std::fabs((double)x[(size_t)n * I + i] * w[(size_t)o * I + i]);
      }
      max_err = std::max(max_err, std::fabs(acc - y[(size_t)n * O + o]) / scale);
    }
  std::snprintf(name, sizeof name, "linear N%d I%d O%d", N, I, O);
  CHECK(max_err < 1e-6, "%s: forward differs from the direct sum by %g of the sum of |terms|", name, max_err);
  linear_backward(dx.data(), dw.data(), db.data(), g.data(), x.data(), w.data(), N, I, O);
  std::string n(name);
  gradcheck((n + " dinp").c_str(), x, dx, f);
  gradcheck((n + " dweight").c_str(), w, dw, f);
  gradcheck((n + " dbias").c_str(), b, db, f);
}

static void test_dropout() {
  const int64_t n = 200000;
  const float p = 0.5f;
  Vec x = randn(n), y(n), mask(n), dx(n), g = randn(n);
  dropout_forward(y.data(), mask.data(), x.data(), n, p, 42, RNG_STREAM_DROPOUT, 7);
  int64_t dropped = 0;
  bool values_ok = true;
  for (int64_t i = 0; i < n; i++) {
    dropped += mask[i] == 0.0f;
    values_ok &= (mask[i] == 0.0f || mask[i] == 2.0f) && y[i] == x[i] * mask[i];
  }
  const double frac = (double)dropped / n;
  CHECK(std::fabs(frac - p) < 0.01, "dropout: dropped fraction %.4f, expected %.2f", frac, p);
  CHECK(values_ok, "dropout: kept units are scaled by 1/(1-p) = 2 and dropped ones are 0");
  Vec mask2(n), y2(n);
  dropout_forward(y2.data(), mask2.data(), x.data(), n, p, 42, RNG_STREAM_DROPOUT, 7);
  CHECK(mask2 == mask, "dropout: the same (seed, stream, counter) gives the same mask");
  dropout_forward(y2.data(), mask2.data(), x.data(), n, p, 42, RNG_STREAM_DROPOUT, 8);
  CHECK(mask2 != mask, "dropout: the next counter gives a new mask");
  Vec xs(x.begin(), x.begin() + 500), ms(mask.begin(), mask.begin() + 500), gs(g.begin(), g.begin() + 500),
      ys(500), dxs(500);
  auto f = [&] {
    for (int i = 0; i < 500; i++) ys[i] = xs[i] * ms[i];
    return dot(gs, ys);
  };
  dropout_backward(dxs.data(), gs.data(), ms.data(), 500);
  gradcheck("dropout", xs, dxs, f);
}

static void test_softmax_xent() {
  const int N = 5, K = 7;
  Vec z = randn((size_t)N * K, 2.0f), probs(z.size()), dz(z.size());
  std::vector<int32_t> labels = {0, 3, 6, 2, 3};
  auto f = [&] { return (double)softmax_xent_forward(probs.data(), z.data(), labels.data(), N, K); };
  const double loss = f();
  double ref = 0;
  for (int n = 0; n < N; n++) {
    double m = -1e30, s = 0;
    for (int k = 0; k < K; k++) m = std::max(m, (double)z[n * K + k]);
    for (int k = 0; k < K; k++) s += std::exp(z[n * K + k] - m);
    ref += std::log(s) + m - z[n * K + labels[n]];
  }
  CHECK(std::fabs(loss - ref / N) < 1e-5, "softmax_xent: loss %g, expected the batch mean %g", loss, ref / N);
  softmax_xent_backward(dz.data(), probs.data(), labels.data(), N, K);
  gradcheck("softmax_xent", z, dz, f, 1e-2f);
}

static void test_sgd() {
  // Two steps with a learning-rate drop between them, against the paper's formula in double.
  Vec w = {1.0f, -2.0f, 0.5f}, v(3, 0.0f), g1 = {0.1f, 0.2f, -0.3f}, g2 = {-0.4f, 0.05f, 0.2f};
  std::vector<double> wd(w.begin(), w.end()), vd(3, 0.0);
  const float lrs[2] = {0.01f, 0.001f};
  const Vec* gs[2] = {&g1, &g2};
  for (int t = 0; t < 2; t++) {
    sgd_update(w.data(), v.data(), gs[t]->data(), 3, lrs[t], 0.9f, 0.0005f);
    for (int i = 0; i < 3; i++) {
      vd[i] = 0.9 * vd[i] - 0.0005 * lrs[t] * wd[i] - lrs[t] * (*gs[t])[i];
      wd[i] += vd[i];
    }
  }
  double err = 0;
  for (int i = 0; i < 3; i++) err = std::max(err, std::fabs(w[i] - wd[i]) + std::fabs(v[i] - vd[i]));
  CHECK(err < 1e-6, "sgd: two steps across an LR drop differ from the paper's rule by %g", err);
}

int main() {
  set_compute_threads(0);
  test_conv(2, 4, 7, 7, 6, 3, 2, 1, 2);
  test_conv(3, 3, 9, 8, 4, 5, 1, 2, 1);
  test_conv(2, 6, 6, 6, 4, 3, 1, 0, 2);
  test_conv(5, 16, 64, 64, 8, 5, 1, 2, 2, 12);  // larger planes, five images
  test_conv(2, 2, 3, 2, 3, 5, 2, 2, 1);  // a tap that reads only padding (kw 4 of width 2, stride 2)
  test_conv(2, 2, 4, 5, 2, 3, 3, 2, 1);  // stride 3, padding wider than a stride
  const ConvWay per_image = ConvWay::PerImage, winograd = ConvWay::Winograd;
  test_conv_ways(per_image, 20, 6, 15, 15, 8, 5, 1, 2, 2);  // more images than the 16 gradient slots
  test_conv_ways(per_image, 3, 3, 23, 23, 4, 11, 4, 0, 1);  // conv1's shape of kernel and stride
  test_conv_ways(per_image, 7, 16, 64, 64, 8, 5, 1, 2, 2);  // the reference in two chunks (5 + 2 images)
  test_conv_ways(winograd, 20, 8, 13, 13, 12, 3, 1, 1, 2);  // the paper's conv3-5 at 13x13, more images than slots
  test_conv_ways(winograd, 5, 6, 7, 7, 4, 3, 1, 1, 1);      // alexnet-32's 7x7 (a half tile at the edge)
  test_conv_ways(winograd, 3, 4, 6, 9, 4, 3, 1, 0, 2);      // no padding, not square
  test_conv_ways(winograd, 2, 3, 5, 4, 6, 3, 1, 2, 1);      // padding 2 (output larger than input)
  test_conv_ways(winograd, 1, 4, 13, 13, 4, 3, 1, 1, 1);    // one image on three threads
  test_relu();
  test_lrn(1e-4f, 0.75f, 2);
  test_lrn(0.5f, 0.75f, 2);
  test_lrn(0.3f, 0.6f, 1);
  test_maxpool(7, 7, 3, 2);
  test_maxpool(8, 6, 2, 2);
  test_maxpool_matches_plain_loop();
  test_linear(3);
  test_linear(40);
  test_linear(1, 9216, 64);  // fc6's input width
  test_dropout();
  test_softmax_xent();
  test_sgd();
  return check_summary();
}
