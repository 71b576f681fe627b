// Cross-backend tests (no Node): every CUDA layer's forward and backward against the CPU
// reference, whole and as the two columns' slices; whole networks (tiny, alexnet-32 and
// the paper's alexnet at a small batch) on CUDA against the CPU for a few training steps;
// two columns on two streams against one stream; data parallel against one replica.
//
// Tolerance: "rel" is max|cuda - cpu| / max|cpu| over a tensor (fp32 GEMMs sum in other
// orders than OpenBLAS, so results differ in the last bits). Layers: 1e-4 (relu, maxpool
// and dropout are bit-exact). Networks: loss and logits 1e-4; weights after an update,
// gradients and momentum by "rel2", the 2-norm distance ||cuda - cpu|| / ||cpu||, within
// 1e-5 (weights) and 5e-3 (gradients, momentum): a max pooling window with two nearly equal inputs, or a ReLU input at ~0,
// can route one element's gradient differently on the two backends (a discontinuity, not
// an error), which a max-norm would blow up. Dropout masks: exactly equal. Two streams vs
// one stream and data vs model parallel: loss and weights 1e-5, gradients rel2 5e-3.
//
// Run: native/build/test_cuda. Exit 0: all passed; 1: a check failed; 77: skipped, no
// CUDA device (a machine without a GPU or driver).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "check.h"
#include "cuda_network.h"
#include "layers.h"
#include "layers_cuda.h"
#include "network.h"
#include "rng.h"

using namespace alexnet;
namespace cu = alexnet::cuda;
using Vec = std::vector<float>;

static const int kSkip = 77;
static std::mt19937 rng_engine(4321);

static Vec randn(size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  Vec v(n);
  for (auto& x : v) x = d(rng_engine);
  return v;
}

template <typename T>
static cu::DeviceArray<T> dev(const std::vector<T>& h) {
  cu::DeviceArray<T> d;
  d.resize(h.size());
  CUDA_CHECK(cudaMemcpy(d.data(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <typename T>
static cu::DeviceArray<T> dev_zeros(size_t n) {
  return dev(std::vector<T>(n, T(0)));
}
template <typename T>
static std::vector<T> host(const cu::DeviceArray<T>& d) {
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<T> h(d.size());
  CUDA_CHECK(cudaMemcpy(h.data(), d.data(), h.size() * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

static double rel(const Vec& a, const Vec& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); i++) {
    num = std::max(num, (double)std::fabs(a[i] - b[i]));
    den = std::max(den, (double)std::fabs(b[i]));
  }
  if (a.size() != b.size()) return INFINITY;
  return num / std::max(den, 1e-30);
}

static double rel2(const Vec& a, const Vec& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    den += (double)b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

static void expect_close2(const char* what, const Vec& cuda, const Vec& cpu, double tol) {
  const double r = rel2(cuda, cpu);
  CHECK(r <= tol, "%s: rel2 %.3g > tol %.3g (max-rel %.3g)", what, r, tol, rel(cuda, cpu));
  std::printf("  %-48s rel2 %.2e (tol %.0e), max-rel %.2e\n", what, r, tol, rel(cuda, cpu));
}

static void expect_close(const char* what, const Vec& cuda, const Vec& cpu, double tol) {
  const double r = rel(cuda, cpu);
  CHECK(r <= tol, "%s: rel %.3g > tol %.3g", what, r, tol);
  std::printf("  %-48s rel %.2e (tol %.0e)\n", what, r, tol);
}

static void expect_equal(const char* what, const Vec& a, const Vec& b) {
  const bool same = a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  CHECK(same, "%s: not bit-for-bit equal", what);
  std::printf("  %-48s %s\n", what, same ? "bit-exact" : "DIFFERENT");
}

// Rows [r0, r1) of a row-major (rows, cols) tensor; channels of (N, C, HW) likewise.
static Vec channels(const Vec& t, int N, int C, int64_t hw, int c0, int c1) {
  Vec out;
  for (int n = 0; n < N; n++)
    out.insert(out.end(), t.begin() + ((int64_t)n * C + c0) * hw, t.begin() + ((int64_t)n * C + c1) * hw);
  return out;
}

struct Gpu {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  Gpu() {
    CUDA_CHECK(cudaStreamCreate(&stream));
    CUBLAS_CHECK(cublasCreate(&blas));
  }
  ~Gpu() {
    cublasDestroy(blas);
    cudaStreamDestroy(stream);
  }
};

// ---- layers ------------------------------------------------------------------------------

// The conv layer on the CPU, then on CUDA as one column and as two columns' slices
// (SPLIT input when the groups allow it, else FULL input with partial input gradients).
static void test_conv(Gpu& g, int N, int C, int H, int W, int O, int K, int S, int P, int G) {
  char name[128];
  std::snprintf(name, sizeof name, "conv N%d C%d %dx%d O%d K%d S%d P%d G%d", N, C, H, W, O, K, S, P, G);
  std::printf("%s\n", name);
  const int OH = conv_out_size(H, K, S, P), OW = conv_out_size(W, K, S, P);
  const int64_t ohw = (int64_t)OH * OW, hw = (int64_t)H * W, row = (int64_t)(C / G) * K * K;
  Vec x = randn((size_t)N * C * hw), w = randn((size_t)O * row, 0.2f), b = randn(O), dy = randn((size_t)N * O * ohw);
  Vec y(dy.size()), dx(x.size()), dw(w.size()), db(O);
  Scratch s;
  conv_forward(y.data(), x.data(), w.data(), b.data(), N, C, H, W, O, K, S, P, G, s);
  conv_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), N, C, H, W, O, K, S, P, G, s);

  cu::ConvScratch cs;
  auto X = dev(x), Wd = dev(w), B = dev(b), DY = dev(dy);
  auto Y = dev_zeros<float>(y.size()), DX = dev_zeros<float>(x.size()), DW = dev_zeros<float>(w.size()),
       DB = dev_zeros<float>(O);
  const cu::ConvDims whole{N, C, H, W, O, K, S, P, G, 0, C, 0, O};
  cu::conv_forward(Y.data(), X.data(), Wd.data(), B.data(), whole, cs, g.blas, g.stream);
  cu::conv_backward(DX.data(), DW.data(), DB.data(), DY.data(), X.data(), Wd.data(), whole, cs, g.blas, g.stream);
  expect_close("forward", host(Y), y, 1e-4);
  expect_close("dinp", host(DX), dx, 1e-4);
  expect_close("dweight", host(DW), dw, 1e-4);
  expect_close("dbias", host(DB), db, 1e-4);

  // Two columns: outputs [0, O/2) and [O/2, O).
  const bool split_in = G % 2 == 0;
  Vec ys, dws, dbs, dxs(split_in ? 0 : x.size(), 0.0f);
  for (int c = 0; c < 2; c++) {
    const int o0 = c * O / 2, Oc = O / 2, cin0 = split_in ? c * C / 2 : 0, Cin = split_in ? C / 2 : C;
    const cu::ConvDims d{N, C, H, W, O, K, S, P, G, cin0, Cin, o0, Oc};
    auto Xc = dev(channels(x, N, C, hw, cin0, cin0 + Cin));
    auto Wc = dev(Vec(w.begin() + o0 * row, w.begin() + (o0 + Oc) * row));
    auto Bc = dev(Vec(b.begin() + o0, b.begin() + o0 + Oc));
    auto DYc = dev(channels(dy, N, O, ohw, o0, o0 + Oc));
    auto Yc = dev_zeros<float>((size_t)N * Oc * ohw), DXc = dev_zeros<float>((size_t)N * Cin * hw),
         DWc = dev_zeros<float>((size_t)Oc * row), DBc = dev_zeros<float>(Oc);
    cu::conv_forward(Yc.data(), Xc.data(), Wc.data(), Bc.data(), d, cs, g.blas, g.stream);
    cu::conv_backward(DXc.data(), DWc.data(), DBc.data(), DYc.data(), Xc.data(), Wc.data(), d, cs, g.blas, g.stream);
    Vec yc = host(Yc), dxc = host(DXc), dwc = host(DWc), dbc = host(DBc);
    ys.resize((size_t)N * O * ohw);
    for (int n = 0; n < N; n++)
      std::copy(yc.begin() + (int64_t)n * Oc * ohw, yc.begin() + (int64_t)(n + 1) * Oc * ohw,
                ys.begin() + ((int64_t)n * O + o0) * ohw);
    dws.insert(dws.end(), dwc.begin(), dwc.end());
    dbs.insert(dbs.end(), dbc.begin(), dbc.end());
    if (split_in) {
      dxs.resize(x.size());
      for (int n = 0; n < N; n++)
        std::copy(dxc.begin() + (int64_t)n * Cin * hw, dxc.begin() + (int64_t)(n + 1) * Cin * hw,
                  dxs.begin() + ((int64_t)n * C + cin0) * hw);
    } else {
      for (size_t i = 0; i < dxs.size(); i++) dxs[i] += dxc[i];  // partial sums over the outputs
    }
  }
  expect_close(split_in ? "two columns (split input): forward" : "two columns (full input): forward", ys, y, 1e-4);
  expect_close("two columns: dinp", dxs, dx, 1e-4);
  expect_close("two columns: dweight", dws, dw, 1e-4);
  expect_close("two columns: dbias", dbs, db, 1e-4);
}

static void test_relu(Gpu& g) {
  std::printf("relu\n");
  const int64_t n = 3001;
  Vec x = randn(n), dy = randn(n), y(n), dx(n);
  relu_forward(y.data(), x.data(), n);
  relu_backward(dx.data(), dy.data(), y.data(), n);
  auto X = dev(x), DY = dev(dy);
  auto Y = dev_zeros<float>(n), DX = dev_zeros<float>(n);
  cu::relu_forward(Y.data(), X.data(), n, g.stream);
  cu::relu_backward(DX.data(), DY.data(), Y.data(), n, g.stream);
  expect_equal("forward", host(Y), y);
  expect_equal("backward", host(DX), dx);
}

static void test_lrn(Gpu& g, int N, int C, int H, int W, int G, int size) {
  std::printf("lrn N%d C%d %dx%d G%d size %d (the paper's alpha 1e-4, beta 0.75, k 2)\n", N, C, H, W, G, size);
  const float alpha = 1e-4f, beta = 0.75f, k = 2.0f;
  const int64_t hw = (int64_t)H * W, n = (int64_t)N * C * hw;
  Vec x = randn(n, 20.0f), dy = randn(n), y(n), sc(n), dx(n);  // large activations: LRN matters
  lrn_forward(y.data(), sc.data(), x.data(), N, C, H, W, G, size, alpha, beta, k);
  lrn_backward(dx.data(), dy.data(), x.data(), y.data(), sc.data(), N, C, H, W, G, size, alpha, beta);
  auto X = dev(x), DY = dev(dy);
  auto Y = dev_zeros<float>(n), SC = dev_zeros<float>(n), DX = dev_zeros<float>(n);
  cu::lrn_forward(Y.data(), SC.data(), X.data(), N, C, 0, C, H, W, G, size, alpha, beta, k, g.stream);
  cu::lrn_backward(DX.data(), DY.data(), X.data(), Y.data(), SC.data(), N, C, 0, C, H, W, G, size, alpha, beta, g.stream);
  expect_close("forward", host(Y), y, 1e-5);
  expect_close("backward", host(DX), dx, 1e-4);
  if (G % 2) return;
  // Column 1 alone: channels [C/2, C), its own LRN blocks.
  const int c0 = C / 2, Cc = C / 2;
  auto Xc = dev(channels(x, N, C, hw, c0, C)), DYc = dev(channels(dy, N, C, hw, c0, C));
  auto Yc = dev_zeros<float>(n / 2), SCc = dev_zeros<float>(n / 2), DXc = dev_zeros<float>(n / 2);
  cu::lrn_forward(Yc.data(), SCc.data(), Xc.data(), N, Cc, c0, C, H, W, G, size, alpha, beta, k, g.stream);
  cu::lrn_backward(DXc.data(), DYc.data(), Xc.data(), Yc.data(), SCc.data(), N, Cc, c0, C, H, W, G, size, alpha,
                   beta, g.stream);
  expect_close("column 1: forward", host(Yc), channels(y, N, C, hw, c0, C), 1e-5);
  expect_close("column 1: backward", host(DXc), channels(dx, N, C, hw, c0, C), 1e-4);
}

static void test_maxpool(Gpu& g, int N, int C, int H, int W, int K, int S) {
  std::printf("maxpool N%d C%d %dx%d K%d S%d (with ties)\n", N, C, H, W, K, S);
  const int OH = (H - K) / S + 1, OW = (W - K) / S + 1;
  const int64_t n = (int64_t)N * C * H * W, m = (int64_t)N * C * OH * OW;
  Vec x = randn(n), dy = randn(m), y(m), dx(n);
  for (auto& v : x) v = std::round(v * 2.0f) / 2.0f;  // many equal values: first max must win
  std::vector<int32_t> am(m);
  maxpool_forward(y.data(), am.data(), x.data(), N, C, H, W, K, S);
  maxpool_backward(dx.data(), dy.data(), am.data(), N, C, H, W, K, S);
  auto X = dev(x), DY = dev(dy);
  auto Y = dev_zeros<float>(m), DX = dev_zeros<float>(n);
  auto AM = dev_zeros<int32_t>(m);
  cu::maxpool_forward(Y.data(), AM.data(), X.data(), N, C, H, W, K, S, g.stream);
  cu::maxpool_backward(DX.data(), DY.data(), AM.data(), N, C, H, W, K, S, g.stream);
  expect_equal("forward", host(Y), y);
  CHECK(host(AM) == am, "maxpool argmax differs (first maximum must win)");
  expect_equal("backward (overlapping windows sum in order)", host(DX), dx);
}

static void test_linear(Gpu& g, int N, int I, int O) {
  std::printf("linear N%d I%d O%d\n", N, I, O);
  Vec x = randn((size_t)N * I), w = randn((size_t)O * I, 0.1f), b = randn(O), dy = randn((size_t)N * O);
  Vec y(dy.size()), dx(x.size()), dw(w.size()), db(O);
  linear_forward(y.data(), x.data(), w.data(), b.data(), N, I, O);
  linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), N, I, O);
  auto X = dev(x), Wd = dev(w), B = dev(b), DY = dev(dy);
  auto Y = dev_zeros<float>(y.size()), DX = dev_zeros<float>(x.size()), DW = dev_zeros<float>(w.size()),
       DB = dev_zeros<float>(O);
  cu::linear_forward(Y.data(), X.data(), Wd.data(), B.data(), N, I, O, g.blas, g.stream);
  cu::linear_backward(DX.data(), DW.data(), DB.data(), DY.data(), X.data(), Wd.data(), N, I, O, g.blas, g.stream);
  expect_close("forward", host(Y), y, 1e-4);
  expect_close("dinp", host(DX), dx, 1e-4);
  expect_close("dweight", host(DW), dw, 1e-4);
  expect_close("dbias", host(DB), db, 1e-5);
  // Two columns (rows [0, O0) and [O0, O)), uneven when O is odd; dinp = sum of partials.
  const int O0 = (O + 1) / 2;
  Vec ys((size_t)N * O), dws, dbs, dxs(x.size(), 0.0f);
  for (int c = 0; c < 2; c++) {
    const int o0 = c ? O0 : 0, Oc = c ? O - O0 : O0;
    auto Wc = dev(Vec(w.begin() + (int64_t)o0 * I, w.begin() + (int64_t)(o0 + Oc) * I));
    auto Bc = dev(Vec(b.begin() + o0, b.begin() + o0 + Oc));
    auto DYc = dev(channels(dy, N, O, 1, o0, o0 + Oc));
    auto Yc = dev_zeros<float>((size_t)N * Oc), DXc = dev_zeros<float>(x.size()),
         DWc = dev_zeros<float>((size_t)Oc * I), DBc = dev_zeros<float>(Oc);
    cu::linear_forward(Yc.data(), X.data(), Wc.data(), Bc.data(), N, I, Oc, g.blas, g.stream);
    cu::linear_backward(DXc.data(), DWc.data(), DBc.data(), DYc.data(), X.data(), Wc.data(), N, I, Oc, g.blas, g.stream);
    Vec yc = host(Yc), dxc = host(DXc), dwc = host(DWc), dbc = host(DBc);
    for (int n = 0; n < N; n++) std::copy(yc.begin() + n * Oc, yc.begin() + (n + 1) * Oc, ys.begin() + n * O + o0);
    dws.insert(dws.end(), dwc.begin(), dwc.end());
    dbs.insert(dbs.end(), dbc.begin(), dbc.end());
    for (size_t i = 0; i < dxs.size(); i++) dxs[i] += dxc[i];
  }
  expect_close("two columns: forward", ys, y, 1e-4);
  expect_close("two columns: dinp (partial sums)", dxs, dx, 1e-4);
  expect_close("two columns: dweight", dws, dw, 1e-4);
  expect_close("two columns: dbias", dbs, db, 1e-5);
}

static void test_dropout(Gpu& g) {
  std::printf("dropout (counter-based masks: CUDA draws equal rng.h's)\n");
  const int N = 5, C = 6, HW = 7;
  const int64_t n = (int64_t)N * C * HW;
  const uint64_t seed = 0x1234567890abcdefULL, stream = RNG_STREAM_DROPOUT + 17, counter = 42;
  for (float p : {0.5f, 0.2f}) {
    Vec x = randn(n), dy = randn(n), y(n), mask(n), dx(n);
    dropout_forward(y.data(), mask.data(), x.data(), n, p, seed, stream, counter);
    dropout_backward(dx.data(), dy.data(), mask.data(), n);
    auto X = dev(x), DY = dev(dy);
    auto Y = dev_zeros<float>(n), M = dev_zeros<float>(n), DX = dev_zeros<float>(n);
    cu::dropout_forward(Y.data(), M.data(), X.data(), N, 0, C, 0, C, HW, p, seed, stream, counter, g.stream);
    cu::dropout_backward(DX.data(), DY.data(), M.data(), n, g.stream);
    expect_equal(p == 0.5f ? "mask p=0.5" : "mask p=0.2", host(M), mask);
    expect_equal("forward", host(Y), y);
    expect_equal("backward", host(DX), dx);
    // Samples [2, 5), channels [3, 6): a replica's and a column's slice.
    const int n0 = 2, c0 = 3;
    Vec xs = channels(Vec(x.begin() + (int64_t)n0 * C * HW, x.end()), N - n0, C, HW, c0, C);
    auto XS = dev(xs);
    auto YS = dev_zeros<float>(xs.size()), MS = dev_zeros<float>(xs.size());
    cu::dropout_forward(YS.data(), MS.data(), XS.data(), N - n0, n0, C - c0, c0, C, HW, p, seed, stream, counter, g.stream);
    expect_equal("mask of a slice (samples 2.., channels 3..)",
                 host(MS), channels(Vec(mask.begin() + (int64_t)n0 * C * HW, mask.end()), N - n0, C, HW, c0, C));
  }
}

static void test_softmax_xent(Gpu& g, int N, int K) {
  std::printf("softmax_xent N%d K%d\n", N, K);
  Vec z = randn((size_t)N * K, 3.0f), q(z.size()), dz(z.size());
  std::vector<int32_t> labels(N);
  for (int n = 0; n < N; n++) labels[n] = (n * 7) % K;
  const float loss = softmax_xent_forward(q.data(), z.data(), labels.data(), N, K);
  softmax_xent_backward(dz.data(), q.data(), labels.data(), N, K);
  auto Z = dev(z);
  auto L = dev(labels);
  auto Q = dev_zeros<float>(z.size()), DZ = dev_zeros<float>(z.size());
  auto LOSS = dev_zeros<double>(N);
  cu::softmax_xent_forward(Q.data(), LOSS.data(), Z.data(), L.data(), N, K, g.stream);
  cu::softmax_xent_backward(DZ.data(), Q.data(), L.data(), N, K, 1.0f / (float)N, g.stream);
  double sum = 0;
  for (double l : host(LOSS)) sum += l;
  expect_close("loss", Vec{(float)(sum / N)}, Vec{loss}, 1e-6);
  expect_close("probs", host(Q), q, 1e-6);
  expect_close("dlogits", host(DZ), dz, 1e-6);
}

static void test_sgd(Gpu& g) {
  std::printf("sgd (the paper's update, fused)\n");
  const int64_t n = 5000;
  Vec w = randn(n), v = randn(n, 0.01f), gr = randn(n);
  auto W = dev(w), V = dev(v), GR = dev(gr);
  sgd_update(w.data(), v.data(), gr.data(), n, 0.01f, 0.9f, 0.0005f);
  cu::sgd_update(W.data(), V.data(), GR.data(), n, 0.01f, 0.9f, 0.0005f, g.stream);
  expect_close("weights", host(W), w, 1e-6);
  expect_close("momentum", host(V), v, 1e-5);
}

// ---- networks ----------------------------------------------------------------------------

static void batch_for(const NetConfig& cfg, int N, uint64_t salt, Vec& images, std::vector<int32_t>& labels) {
  const int64_t in = (int64_t)cfg.channels * cfg.height * cfg.width;
  images.resize((size_t)N * in);
  for (size_t i = 0; i < images.size(); i++) images[i] = (float)(50.0 * rng_normal(7, salt, 0, i));
  labels.resize(N);
  for (int n = 0; n < N; n++) labels[n] = (int)((n * 31 + salt) % cfg.classes);
}

static Vec grads(std::vector<Param>& ps, const char* kind) {
  Vec all;
  for (Param& p : ps) {
    const Vec& v = std::string(kind) == "grad" ? p.grad : std::string(kind) == "value" ? p.value : p.momentum;
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

// CPU vs CUDA over `steps` training steps: loss, logits, every gradient, the weights and
// momentum after each update, the dropout masks.
static void test_network_vs_cpu(const std::string& model, int N, int steps, const DeviceOptions& opt) {
  std::printf("network %s, batch %d, %d steps: CUDA (%s) vs CPU\n", model.c_str(), N, steps, opt.parallel.c_str());
  const NetConfig cfg = preset_config(model);
  Network cpu(cfg, 11, 0);
  cu::CudaNetwork gpu(cfg, 11, opt);
  std::printf("  on %s\n", gpu.device_name().c_str());
  expect_equal("initial weights", grads(gpu.params(), "value"), grads(cpu.params(), "value"));
  SgdConfig sgd;
  sgd.lr = 0.01f;
  for (int s = 0; s < steps; s++) {
    Vec images;
    std::vector<int32_t> labels;
    batch_for(cfg, N, s, images, labels);
    const float lc = cpu.forward(images.data(), labels.data(), N, true);
    const float lg = gpu.forward(images.data(), labels.data(), N, true);
    char what[96];
    std::snprintf(what, sizeof what, "step %d: loss (cpu %.6f)", s, lc);
    expect_close(what, Vec{lg}, Vec{lc}, 1e-4);
    expect_close("  logits", Vec(gpu.logits(), gpu.logits() + (size_t)N * cfg.classes),
                 Vec(cpu.logits(), cpu.logits() + (size_t)N * cfg.classes), 1e-4);
    auto mc = cpu.dropout_masks();
    auto mg = gpu.dropout_masks();
    CHECK(mc.size() == mg.size(), "dropout mask count differs");
    for (size_t k = 0; k < mc.size() && k < mg.size(); k++)
      expect_equal(("  " + mc[k].name).c_str(), Vec(mg[k].data, mg[k].data + mg[k].rows * mg[k].cols),
                   Vec(mc[k].data, mc[k].data + mc[k].rows * mc[k].cols));
    cpu.backward();
    gpu.backward();
    gpu.params_to_host();
    for (size_t pi = 0; pi < cpu.params().size(); pi++)
      expect_close2(("  grad " + cpu.params()[pi].name).c_str(), gpu.params()[pi].grad, cpu.params()[pi].grad, 5e-3);
    cpu.update(sgd);
    gpu.update(sgd);
    gpu.params_to_host();
    expect_close2("  weights after the update", grads(gpu.params(), "value"), grads(cpu.params(), "value"), 1e-5);
    expect_close2("  momentum after the update", grads(gpu.params(), "momentum"), grads(cpu.params(), "momentum"), 5e-3);
    CHECK(gpu.step_counter() == cpu.step_counter(), "step counters differ");
  }
  // Host writes reach the device (state load): same bias bump on both, same logits.
  Vec images;
  std::vector<int32_t> labels;
  batch_for(cfg, N, 99, images, labels);
  gpu.params_to_host();
  cpu.find_param("fc8.bias")->value[0] += 3.0f;
  gpu.find_param("fc8.bias")->value[0] += 3.0f;
  gpu.params_written();
  cpu.forward(images.data(), nullptr, N, false);
  gpu.forward(images.data(), nullptr, N, false);
  expect_close("  inference logits after a host write", Vec(gpu.logits(), gpu.logits() + (size_t)N * cfg.classes),
               Vec(cpu.logits(), cpu.logits() + (size_t)N * cfg.classes), 1e-4);
}

// Two CUDA placements of the same network over `steps` steps: losses and final weights.
static void test_cuda_vs_cuda(const char* what, const std::string& model, int N, int steps, const DeviceOptions& a,
                              const DeviceOptions& b, double tol) {
  std::printf("%s (%s, batch %d, %d steps)\n", what, model.c_str(), N, steps);
  const NetConfig cfg = preset_config(model);
  cu::CudaNetwork na(cfg, 5, a), nb(cfg, 5, b);
  std::printf("  %s\n  vs %s\n", na.device_name().c_str(), nb.device_name().c_str());
  SgdConfig sgd;
  for (int s = 0; s < steps; s++) {
    Vec images;
    std::vector<int32_t> labels;
    batch_for(cfg, N, 100 + s, images, labels);
    const float la = na.step(images.data(), labels.data(), N, sgd, true);
    const float lb = nb.step(images.data(), labels.data(), N, sgd, true);
    expect_close("  loss", Vec{la}, Vec{lb}, tol);
  }
  na.params_to_host();
  nb.params_to_host();
  expect_close2("  weights", grads(na.params(), "value"), grads(nb.params(), "value"), tol);
  expect_close2("  gradients of the last step", grads(na.params(), "grad"), grads(nb.params(), "grad"), 5e-3);
}

int main() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("SKIP test_cuda: no CUDA device (%s): run it on a GPU machine (scripts/gpu-check.sh)\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return kSkip;
  }
  for (int d = 0; d < count; d++) {
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, d));
    std::printf("device %d: %s (sm_%d%d, %.0f GiB)\n", d, prop.name, prop.major, prop.minor, prop.totalGlobalMem / 1073741824.0);
  }
  try {
    Gpu g;
    test_conv(g, 2, 3, 13, 13, 8, 3, 1, 1, 1);
    test_conv(g, 3, 8, 9, 9, 12, 5, 2, 2, 2);
    test_conv(g, 2, 3, 35, 35, 16, 11, 4, 0, 1);  // conv1's shape, smaller
    test_conv(g, 2, 16, 7, 7, 12, 3, 1, 1, 1);    // conv3: groups cross the columns
    test_conv(g, 2, 8, 6, 6, 8, 3, 1, 1, 4);
    test_relu(g);
    test_lrn(g, 2, 8, 5, 5, 2, 5);
    test_lrn(g, 2, 7, 4, 3, 1, 4);
    test_maxpool(g, 2, 3, 13, 13, 3, 2);
    test_maxpool(g, 1, 2, 8, 9, 2, 2);
    test_linear(g, 4, 50, 30);
    test_linear(g, 3, 20, 5);
    test_dropout(g);
    test_softmax_xent(g, 5, 7);
    test_softmax_xent(g, 3, 1000);
    test_sgd(g);

    DeviceOptions model;
    model.device = "cuda";
    DeviceOptions seq = model;
    seq.sequential = true;
    DeviceOptions data = model;
    data.parallel = "data";
    data.devices = {0, 0};  // two replicas on one device: the same peer-copy code path
    test_network_vs_cpu("tiny", 4, 3, model);
    test_network_vs_cpu("alexnet-32", 8, 2, model);
    test_network_vs_cpu("alexnet", 2, 2, model);
    test_network_vs_cpu("alexnet-32", 5, 2, data);  // uneven slices: 3 + 2
    test_cuda_vs_cuda("two columns on two streams vs one stream", "alexnet-64", 16, 3, model, seq, 1e-5);
    test_cuda_vs_cuda("data parallel (2 replicas) vs model parallel", "alexnet-64", 16, 3, data, model, 1e-5);
    if (count >= 2) {
      DeviceOptions two = model;
      two.devices = {0, 1};
      DeviceOptions data2 = data;
      data2.devices = {0, 1};
      test_cuda_vs_cuda("two columns on two GPUs vs one GPU", "alexnet", 8, 2, two, model, 1e-5);
      test_cuda_vs_cuda("data parallel on two GPUs vs model parallel", "alexnet-64", 16, 2, data2, model, 1e-5);
    } else {
      std::printf("one device: the two-GPU placements were not run\n");
    }
    // No GPU stays silent about a bad device id.
    DeviceOptions bad = model;
    bad.devices = {count};
    bool threw = false;
    try {
      cu::CudaNetwork n(preset_config("tiny"), 1, bad);
    } catch (const std::invalid_argument& ex) {
      threw = std::string(ex.what()).find("does not exist") != std::string::npos;
    }
    CHECK(threw, "a missing device id is refused with a message naming it");
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "test_cuda: %s\n", ex.what());
    g_failed++;
  }
  return check_summary();
}
