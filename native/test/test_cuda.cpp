// Cross-backend tests (no Node): every CUDA layer's forward and backward against the CPU
// reference, whole and as the two columns' slices, in fp32, TF32 and BF16; whole networks
// (tiny, alexnet-32, the paper's alexnet, and alexnet-32 variants whose LRN or fc6 sees a
// FULL activation, the plan branches no preset reaches) on CUDA against the CPU for a few
// training steps and for inference; two columns on two streams against one stream; data
// parallel against one replica; the API the CPU tests exercise (eval forward + backward,
// resume from copied state, NaN refusal, bad options, error codes, layer timing).
//
// Tolerance: "rel" is max|cuda - cpu| / max|cpu| over a tensor (fp32 GEMMs sum in other
// orders than OpenBLAS, so results differ in the last bits). Layers: 1e-4 (relu, maxpool
// and dropout are bit-exact). Networks: loss and logits 1e-4; weights after an update,
// gradients and momentum by "rel2", the 2-norm distance ||cuda - cpu|| / ||cpu||, within
// 1e-5 (weights) and 5e-3 (gradients, momentum): a max pooling window with two nearly equal
// inputs, or a ReLU input at ~0, can route one element's gradient differently on the two
// backends (a discontinuity, not an error), which a max-norm would blow up. Dropout masks:
// exactly equal. Two streams vs one stream and data vs model parallel: loss and weights
// 1e-5, gradients rel2 5e-3. TF32 and BF16: see layer_tol and net_tol.
//
// Run: native/build/test_cuda [substring...]   only the tests whose name contains one of
//      the substrings (none: all); --list prints the names.
// Every test runs on its own: an exception of any type (a CUDA or cuBLAS error, or
// anything else) fails that test and the next one runs. Output is line-buffered and each
// test ends with a running tally, so a run killed by a timeout still shows what passed;
// SIGTERM/SIGINT print the count. A test that cannot run on this machine (the two-GPU
// placements on one GPU) prints one machine-readable line, inside its "== NAME" block,
//   SKIP NAME: REASON
// (NAME exactly as in the "== NAME" line above it; scripts/gpu-check.sh collects these
// into results.json's "skipped"), as does the whole program without a device
// ("SKIP test_cuda: no CUDA device ...").
// Exit 0: all passed (some may have been skipped); 1: a check failed; 77: skipped, no
// CUDA device.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "api.h"
#include "check.h"
#include "cuda_network.h"
#include "layers.h"
#include "layers_cuda.h"
#include "network.h"
#include "rng.h"

using namespace alexnet;
namespace cu = alexnet::cuda;
using Vec = std::vector<float>;
// A parameter tensor (ZeroedFloats) as a plain vector, for the comparisons below.
static Vec vec(const ZeroedFloats& v) { return Vec(v.begin(), v.end()); }

static const int kSkip = 77;
static std::mt19937 rng_engine(4321);
static int g_device_count = 0;

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
  if (std::isnan(num)) return INFINITY;
  return num / std::max(den, 1e-30);
}

static double rel2(const Vec& a, const Vec& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    den += (double)b[i] * b[i];
  }
  const double r = std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
  return std::isnan(r) ? INFINITY : r;
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

static bool bit_equal(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

static void expect_equal(const char* what, const Vec& a, const Vec& b) {
  const bool same = bit_equal(a, b);
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

// ---- the runner --------------------------------------------------------------------------

struct TestCase {
  std::string name;
  std::function<void()> fn;
};
static std::vector<TestCase> g_tests;
static void add(const std::string& name, std::function<void()> fn) { g_tests.push_back({name, std::move(fn)}); }

static volatile sig_atomic_t g_in_test = 0;
static char g_current[256] = "";
static bool g_current_skipped = false;
static int g_skipped = 0;

// Inside a test: it cannot run here. Prints "SKIP <name>: <reason>" (the test's name as its
// "== " line gave it), for gpu-check.sh to collect; the test should return next.
static void skip_test(const char* reason) {
  if (!g_current_skipped) g_skipped++;
  g_current_skipped = true;
  std::printf("SKIP %s: %s\n", g_current, reason);
}

// A timeout's SIGTERM (or ^C) still leaves the count: the test in progress counts as failed.
static void on_signal(int sig) {
  char buf[512];
  const int n = std::snprintf(buf, sizeof buf, "\ntest_cuda: interrupted by signal %d during '%s'\n%d passed, %d failed\n",
                              sig, g_in_test ? g_current : "(between tests)", g_passed, g_failed + (g_in_test ? 1 : 0));
  if (n > 0) (void)!write(STDOUT_FILENO, buf, std::min((size_t)n, sizeof buf - 1));
  _exit(128 + sig);
}

static void run_test(const TestCase& t) {
  std::snprintf(g_current, sizeof g_current, "%s", t.name.c_str());
  g_in_test = 1;
  std::printf("== %s\n", t.name.c_str());
  g_current_skipped = false;
  const int failed_before = g_failed;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    CUDA_CHECK(cudaSetDevice(0));
    t.fn();
    CUDA_CHECK(cudaDeviceSynchronize());  // an asynchronous fault belongs to this test
    CUDA_CHECK(cudaGetLastError());
  } catch (const std::exception& e) {
    g_failed++;
    std::fprintf(stderr, "FAIL %s: threw: %s\n", t.name.c_str(), e.what());
  } catch (...) {  // not a std::exception: still this test's failure, and the next one runs
    g_failed++;
    std::fprintf(stderr, "FAIL %s: threw an exception that is not a std::exception\n", t.name.c_str());
  }
  cudaGetLastError();  // clear a non-sticky error: the next test starts clean
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const char* outcome = g_failed != failed_before ? "FAILED" : g_current_skipped ? "skipped" : "ok";
  std::printf("-- %s: %s in %.2f s (so far %d passed, %d failed, %d skipped)\n", t.name.c_str(), outcome, s,
              g_passed, g_failed, g_skipped);
  g_in_test = 0;
}

// The layer tests' stream and GEMM context (created on first use, inside a test).
struct Gpu {
  cu::Stream stream = cu::create_stream(cudaStreamDefault);
  cu::GemmContext gemm;
  Gpu() {
    gemm.blas = cu::create_blas();
    gemm.precision = cu::Precision::FP32;
  }
  cu::GemmContext& in(cu::Precision p) {
    gemm.precision = p;
    return gemm;
  }
};
static std::unique_ptr<Gpu> g_gpu;
static Gpu& gpu() {
  if (!g_gpu) g_gpu.reset(new Gpu());
  return *g_gpu;
}

// ---- layers ------------------------------------------------------------------------------

// Conv and linear tolerances per precision (rel = max-abs-diff / max-abs of the fp32 CPU
// result). TF32 keeps 10 mantissa bits (a product is off by up to 2^-10 relative when the
// tensor cores truncate), BF16 keeps 8 (each rounded input up to 2^-9, a product up to
// 2^-8 = 3.9e-3), and fp32 accumulation sums those errors with random signs, so the output
// error stays of the order of one product's: emulating the GEMM-input rounding on the CPU
// reference for these very shapes gives rel <= 9e-4 (TF32, truncation) and <= 3.8e-3 (BF16,
// round to nearest). Tolerances 5e-3 and 3e-2 leave 5-8x. dbias sums the fp32 output
// gradient in every precision: fp32's tolerance.
struct LayerTol {
  double out, dinp, dweight;
};
static LayerTol layer_tol(cu::Precision p) {
  switch (p) {
    case cu::Precision::TF32: return {5e-3, 5e-3, 5e-3};
    case cu::Precision::BF16: return {3e-2, 3e-2, 3e-2};
    default: return {1e-4, 1e-4, 1e-4};
  }
}

// The conv layer on the CPU, then on CUDA as one column and as two columns' slices
// (SPLIT input when the groups allow it, else FULL input with partial input gradients).
static void test_conv(cu::Precision prec, int N, int C, int H, int W, int O, int K, int S, int P, int G) {
  Gpu& g = gpu();
  const LayerTol tol = layer_tol(prec);
  const int OH = conv_out_size(H, K, S, P), OW = conv_out_size(W, K, S, P);
  const int64_t ohw = (int64_t)OH * OW, hw = (int64_t)H * W, row = (int64_t)(C / G) * K * K;
  Vec x = randn((size_t)N * C * hw), w = randn((size_t)O * row, 0.2f), b = randn(O), dy = randn((size_t)N * O * ohw);
  Vec y(dy.size()), dx(x.size()), dw(w.size()), db(O);
  Scratch s;
  conv_forward(y.data(), x.data(), w.data(), b.data(), N, C, H, W, O, K, S, P, G, s);
  conv_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), N, C, H, W, O, K, S, P, G, s);

  auto X = dev(x), Wd = dev(w), B = dev(b), DY = dev(dy);
  auto Y = dev_zeros<float>(y.size()), DX = dev_zeros<float>(x.size()), DW = dev_zeros<float>(w.size()),
       DB = dev_zeros<float>(O);
  const cu::ConvDims whole{N, C, H, W, O, K, S, P, G, 0, C, 0, O};
  cu::conv_forward(Y.data(), X.data(), Wd.data(), B.data(), whole, g.in(prec), g.stream);
  cu::conv_backward(DX.data(), DW.data(), DB.data(), DY.data(), X.data(), Wd.data(), whole, g.in(prec), g.stream);
  expect_close("forward", host(Y), y, tol.out);
  expect_close("dinp", host(DX), dx, tol.dinp);
  expect_close("dweight", host(DW), dw, tol.dweight);
  expect_close("dbias", host(DB), db, 1e-4);
  // The forward's col kept for the backward (as training does) gives the same gradients.
  {
    cu::ConvCache kept;
    auto Y2 = dev_zeros<float>(y.size()), DX2 = dev_zeros<float>(x.size()), DW2 = dev_zeros<float>(w.size()),
         DB2 = dev_zeros<float>(O);
    cu::conv_forward(Y2.data(), X.data(), Wd.data(), B.data(), whole, g.in(prec), g.stream, &kept);
    CHECK(kept.valid, "conv_forward kept its col for the backward");
    cu::conv_backward(DX2.data(), DW2.data(), DB2.data(), DY.data(), X.data(), Wd.data(), whole, g.in(prec), g.stream,
                      nullptr, &kept);
    expect_close("forward (col kept)", host(Y2), y, tol.out);
    expect_close("dinp (col kept)", host(DX2), dx, tol.dinp);
    expect_close("dweight (from the kept col)", host(DW2), dw, tol.dweight);
  }
  // Both forward schemes, whatever AUTO picked for this shape.
  for (cu::ConvForward mode : {cu::ConvForward::BATCHED, cu::ConvForward::GEMM}) {
    cu::GemmContext& ctx = g.in(prec);
    ctx.conv_forward = mode;
    auto Y2 = dev_zeros<float>(y.size());
    try {
      cu::conv_forward(Y2.data(), X.data(), Wd.data(), B.data(), whole, ctx, g.stream);
    } catch (...) {
      ctx.conv_forward = cu::ConvForward::AUTO;
      throw;
    }
    ctx.conv_forward = cu::ConvForward::AUTO;
    expect_close(mode == cu::ConvForward::BATCHED ? "forward (strided-batched GEMM into NCHW)"
                                                  : "forward (one GEMM + scatter)",
                 host(Y2), y, tol.out);
  }

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
    cu::conv_forward(Yc.data(), Xc.data(), Wc.data(), Bc.data(), d, g.in(prec), g.stream);
    cu::conv_backward(DXc.data(), DWc.data(), DBc.data(), DYc.data(), Xc.data(), Wc.data(), d, g.in(prec), g.stream);
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
  expect_close(split_in ? "two columns (split input): forward" : "two columns (full input): forward", ys, y, tol.out);
  expect_close("two columns: dinp", dxs, dx, tol.dinp);
  expect_close("two columns: dweight", dws, dw, tol.dweight);
  expect_close("two columns: dbias", dbs, db, 1e-4);
}

static void test_relu() {
  Gpu& g = gpu();
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

// The paper's alpha 1e-4, beta 0.75, k 2.
static void test_lrn(int N, int C, int H, int W, int G, int size) {
  Gpu& g = gpu();
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

static void test_maxpool(int N, int C, int H, int W, int K, int S) {
  Gpu& g = gpu();
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

static void test_linear(cu::Precision prec, int N, int I, int O) {
  Gpu& g = gpu();
  const LayerTol tol = layer_tol(prec);
  Vec x = randn((size_t)N * I), w = randn((size_t)O * I, 0.1f), b = randn(O), dy = randn((size_t)N * O);
  Vec y(dy.size()), dx(x.size()), dw(w.size()), db(O);
  linear_forward(y.data(), x.data(), w.data(), b.data(), N, I, O);
  linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), N, I, O);
  auto X = dev(x), Wd = dev(w), B = dev(b), DY = dev(dy);
  auto Y = dev_zeros<float>(y.size()), DX = dev_zeros<float>(x.size()), DW = dev_zeros<float>(w.size()),
       DB = dev_zeros<float>(O);
  cu::linear_forward(Y.data(), X.data(), Wd.data(), B.data(), N, I, O, g.in(prec), g.stream);
  cu::linear_backward(DX.data(), DW.data(), DB.data(), DY.data(), X.data(), Wd.data(), N, I, O, g.in(prec), g.stream);
  expect_close("forward", host(Y), y, tol.out);
  expect_close("dinp", host(DX), dx, tol.dinp);
  expect_close("dweight", host(DW), dw, tol.dweight);
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
    cu::linear_forward(Yc.data(), X.data(), Wc.data(), Bc.data(), N, I, Oc, g.in(prec), g.stream);
    cu::linear_backward(DXc.data(), DWc.data(), DBc.data(), DYc.data(), X.data(), Wc.data(), N, I, Oc, g.in(prec),
                        g.stream);
    Vec yc = host(Yc), dxc = host(DXc), dwc = host(DWc), dbc = host(DBc);
    for (int n = 0; n < N; n++) std::copy(yc.begin() + n * Oc, yc.begin() + (n + 1) * Oc, ys.begin() + n * O + o0);
    dws.insert(dws.end(), dwc.begin(), dwc.end());
    dbs.insert(dbs.end(), dbc.begin(), dbc.end());
    for (size_t i = 0; i < dxs.size(); i++) dxs[i] += dxc[i];
  }
  expect_close("two columns: forward", ys, y, tol.out);
  expect_close("two columns: dinp (partial sums)", dxs, dx, tol.dinp);
  expect_close("two columns: dweight", dws, dw, tol.dweight);
  expect_close("two columns: dbias", dbs, db, 1e-5);
}

// Counter-based masks: CUDA draws equal rng.h's.
static void test_dropout() {
  Gpu& g = gpu();
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

static void test_softmax_xent(int N, int K) {
  Gpu& g = gpu();
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

// The paper's update, fused.
static void test_sgd() {
  Gpu& g = gpu();
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
    const ZeroedFloats& v = std::string(kind) == "grad" ? p.grad : std::string(kind) == "value" ? p.value : p.momentum;
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

template <typename Net>
static Vec logits_of(const Net& net, int N) {
  return Vec(net.logits(), net.logits() + (size_t)N * net.config().classes);
}

// alexnet-32 with the first LRN over both columns (groups 1): the LRN gathers conv1's two
// halves, maxpool runs on a FULL activation and conv2 (groups 2) reads a FULL input
// without a gather, so its input gradient is a partial sum per column that must be summed
// over both (all-reduce), and the gathered LRN's gradient is sliced back per column.
static NetConfig alexnet32_lrn1() {
  NetConfig cfg = preset_config("alexnet-32");
  for (LayerSpec& l : cfg.layers)
    if (l.type == LayerType::Lrn) {
      l.groups = 1;
      break;
    }
  cfg.name = "alexnet-32+lrn1";
  return cfg;
}

// alexnet-32 with an LRN over both columns and a dropout between pool5 and fc6: the LRN
// gathers the SPLIT pool5, the dropout masks a FULL activation (both columns draw the same
// mask), and fc6 is a linear layer over a FULL input (no gather; all-reduce backward).
static NetConfig alexnet32_fullfc() {
  NetConfig cfg = preset_config("alexnet-32");
  for (size_t i = 0; i < cfg.layers.size(); i++)
    if (cfg.layers[i].type == LayerType::Linear) {
      LayerSpec lrn;
      lrn.type = LayerType::Lrn;
      lrn.groups = 1;
      LayerSpec drop;
      drop.type = LayerType::Dropout;
      drop.p = 0.3f;
      cfg.layers.insert(cfg.layers.begin() + i, {lrn, drop});
      break;
    }
  cfg.name = "alexnet-32+fullfc";
  return cfg;
}

// Whole-network tolerances per precision (see the file comment for fp32). TF32 and BF16
// were sized by emulating the GEMM-input rounding on the CPU reference (alexnet-32, batch
// 8, the batches and seed below): the loss moved by <= 2.3e-4 relative, the logits by
// <= 2.8e-2 (BF16) and 1.2e-2 (TF32, truncating) max-rel. The gradients are another matter:
// a forward perturbed by ~3e-3 relative per layer flips which input wins a max-pool window
// (top two within the perturbation: ~1% of windows) and the sign of ReLU inputs near 0, so
// ~0.5% of the gradient is routed elsewhere, which is a rel2 of ~sqrt(2 * 0.005) = 0.1 per
// layer below it, not rounding. Emulated: conv1.weight rel2 0.19 at step 0, 0.30 at step 1
// (the weights differ by then) in BF16, 0.11 / 0.18 in TF32, fc8 <= 2.6e-2 (nothing
// discontinuous above it). So the gradient and momentum tolerances (rel2 0.4 / 0.6 BF16,
// 0.25 / 0.4 TF32, step 0 / later) only catch a wrong gradient (rel2 >= ~1: a transposed,
// dropped or doubled term), while the loss, the logits and the weights after the update
// (the update is ~2e-3 of the weights, so weights rel2 = 2e-3 x gradient rel2: emulated
// 4.6e-4 BF16, 2.6e-4 TF32) are checked tightly. Dropout masks stay exact in every precision.
struct NetTol {
  double loss, logits, grad0, grad, weights;
};
static const NetTol kNetFp32{1e-4, 1e-4, 5e-3, 5e-3, 1e-5};
static NetTol net_tol(const std::string& precision) {
  if (precision == "bf16") return {1e-2, 1e-1, 0.4, 0.6, 1.5e-3};
  if (precision == "tf32") return {5e-3, 5e-2, 0.25, 0.4, 1e-3};
  return kNetFp32;
}

// CPU vs CUDA over one training step per entry of `batches` (its batch size): loss,
// logits, every gradient, the weights and momentum after each update, the dropout masks;
// then inference logits after a host write of a parameter.
static void test_network_vs_cpu(const NetConfig& cfg, const std::vector<int>& batches, const DeviceOptions& opt) {
  const NetTol tol = net_tol(opt.precision);
  Network cpu(cfg, 11, 0);
  cu::CudaNetwork gpu(cfg, 11, opt);
  std::printf("  %s on %s\n", cfg.name.c_str(), gpu.device_name().c_str());
  expect_equal("initial weights", grads(gpu.params(), "value"), grads(cpu.params(), "value"));
  SgdConfig sgd;
  sgd.lr = 0.01f;
  for (size_t s = 0; s < batches.size(); s++) {
    const int N = batches[s];
    Vec images;
    std::vector<int32_t> labels;
    batch_for(cfg, N, s, images, labels);
    const float lc = cpu.forward(images.data(), labels.data(), N, true);
    const float lg = gpu.forward(images.data(), labels.data(), N, true);
    char what[96];
    std::snprintf(what, sizeof what, "step %zu (batch %d): loss (cpu %.6f)", s, N, lc);
    expect_close(what, Vec{lg}, Vec{lc}, tol.loss);
    expect_close("  logits", logits_of(gpu, N), logits_of(cpu, N), tol.logits);
    auto mc = cpu.dropout_masks();
    auto mg = gpu.dropout_masks();
    CHECK(mc.size() == mg.size(), "dropout mask count differs (cpu %zu, cuda %zu)", mc.size(), mg.size());
    for (size_t k = 0; k < mc.size() && k < mg.size(); k++) {
      CHECK(mc[k].name == mg[k].name && mc[k].rows == mg[k].rows && mc[k].cols == mg[k].cols,
            "dropout mask %zu: cpu %s (%lld x %lld), cuda %s (%lld x %lld)", k, mc[k].name.c_str(),
            (long long)mc[k].rows, (long long)mc[k].cols, mg[k].name.c_str(), (long long)mg[k].rows,
            (long long)mg[k].cols);
      expect_equal(("  " + mc[k].name).c_str(), Vec(mg[k].data, mg[k].data + mg[k].rows * mg[k].cols),
                   Vec(mc[k].data, mc[k].data + mc[k].rows * mc[k].cols));
    }
    cpu.backward();
    gpu.backward();
    gpu.params_to_host();
    const double gtol = s == 0 ? tol.grad0 : tol.grad;
    for (size_t pi = 0; pi < cpu.params().size(); pi++)
      expect_close2(("  grad " + cpu.params()[pi].name).c_str(), vec(gpu.params()[pi].grad), vec(cpu.params()[pi].grad), gtol);
    cpu.update(sgd);
    gpu.update(sgd);
    gpu.params_to_host();
    expect_close2("  weights after the update", grads(gpu.params(), "value"), grads(cpu.params(), "value"), tol.weights);
    expect_close2("  momentum after the update", grads(gpu.params(), "momentum"), grads(cpu.params(), "momentum"), gtol);
    CHECK(gpu.step_counter() == cpu.step_counter(), "step counters differ");
  }
  // Host writes reach the device (state load): same bias bump on both, same logits.
  const int N = batches.back();
  Vec images;
  std::vector<int32_t> labels;
  batch_for(cfg, N, 99, images, labels);
  gpu.params_to_host();
  const std::string last = cfg.layers.back().name + ".bias";
  cpu.find_param(last)->value[0] += 3.0f;
  gpu.find_param(last)->value[0] += 3.0f;
  gpu.params_written();
  cpu.forward(images.data(), nullptr, N, false);
  const float none = gpu.forward(images.data(), nullptr, N, false);
  CHECK(std::isnan(none), "forward without labels returns NaN (got %g)", none);
  expect_close("  inference logits after a host write", logits_of(gpu, N), logits_of(cpu, N), tol.logits);
  CHECK(gpu.dropout_masks().empty(), "no dropout masks after an inference forward");
}

// Inference only (train false, labels null) at each batch size in turn on the same
// networks (growing and shrinking the buffers): logits against the CPU's, and every
// layer's output (the features the binding reads: gathered from SPLIT columns, each
// replica's slice of the batch) against the CPU's layer_output.
static void test_inference(const NetConfig& cfg, const std::vector<int>& batches, const DeviceOptions& opt) {
  Network cpu(cfg, 21, 0);
  cu::CudaNetwork gpu(cfg, 21, opt);
  std::printf("  %s on %s\n", cfg.name.c_str(), gpu.device_name().c_str());
  for (int N : batches) {
    Vec images;
    std::vector<int32_t> labels;
    batch_for(cfg, N, 50 + N, images, labels);
    cpu.forward(images.data(), nullptr, N, false);
    const float lg = gpu.forward(images.data(), nullptr, N, false);
    CHECK(std::isnan(lg), "forward without labels returns NaN (got %g)", lg);
    CHECK(gpu.batch() == N, "batch() is %d after a forward of %d", gpu.batch(), N);
    char what[64];
    std::snprintf(what, sizeof what, "batch %d: logits", N);
    expect_close(what, logits_of(gpu, N), logits_of(cpu, N), 1e-4);
    for (size_t i = 0; i < cfg.layers.size(); i++) {
      const size_t n = (size_t)N * cpu.shapes()[i].size();
      Vec out(n, 1e30f);  // a value left unwritten fails the comparison
      gpu.copy_layer_output(i, out.data());
      std::snprintf(what, sizeof what, "batch %d: layer %zu output", N, i);
      expect_close(what, out, Vec(cpu.layer_output(i), cpu.layer_output(i) + n), 1e-4);
    }
  }
  CHECK(gpu.dropout_masks().empty(), "no dropout masks after inference");
}

// The CPU gradient check's use: a forward with labels but train false (dropout passes
// through), then backward: the gradients against the CPU's.
static void test_eval_backward(const NetConfig& cfg, int N, const DeviceOptions& opt) {
  Network cpu(cfg, 5, 0);
  cu::CudaNetwork gpu(cfg, 5, opt);
  std::printf("  %s on %s\n", cfg.name.c_str(), gpu.device_name().c_str());
  Vec images;
  std::vector<int32_t> labels;
  batch_for(cfg, N, 9, images, labels);
  const float lc = cpu.forward(images.data(), labels.data(), N, false);
  const float lg = gpu.forward(images.data(), labels.data(), N, false);
  expect_close("eval loss", Vec{lg}, Vec{lc}, 1e-4);
  cpu.backward();
  gpu.backward();
  gpu.params_to_host();
  for (size_t pi = 0; pi < cpu.params().size(); pi++)
    expect_close2(("  grad " + cpu.params()[pi].name).c_str(), vec(gpu.params()[pi].grad), vec(cpu.params()[pi].grad), 5e-3);
  CHECK(gpu.step_counter() == 0, "a forward and backward do not advance the step counter");
}

// Two CUDA placements of the same network over `steps` steps: losses and final weights.
static void test_cuda_vs_cuda(const NetConfig& cfg, int N, int steps, const DeviceOptions& a, const DeviceOptions& b,
                              double tol) {
  cu::CudaNetwork na(cfg, 5, a), nb(cfg, 5, b);
  std::printf("  %s, batch %d, %d steps\n  %s\n  vs %s\n", cfg.name.c_str(), N, steps, na.device_name().c_str(),
              nb.device_name().c_str());
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

// test_network.cpp's resume: weights, momentum and the RNG state copied after 2 steps into
// a network built with another seed, then 2 more steps, end bitwise equal to 4 steps in
// one go (same placement, deterministic kernels: the same bits).
static void test_resume(const DeviceOptions& opt) {
  const NetConfig cfg = preset_config("alexnet-32");
  const int N = 8;
  Vec im[2];
  std::vector<int32_t> lb[2];
  for (int k = 0; k < 2; k++) batch_for(cfg, N, 1 + k, im[k], lb[k]);
  SgdConfig sgd;
  cu::CudaNetwork a(cfg, 11, opt), c(cfg, 11, opt), d(cfg, 999, opt);
  for (int t = 0; t < 4; t++) a.step(im[t % 2].data(), lb[t % 2].data(), N, sgd, true);
  for (int t = 0; t < 2; t++) c.step(im[t % 2].data(), lb[t % 2].data(), N, sgd, true);
  c.params_to_host();
  for (size_t i = 0; i < c.params().size(); i++) {
    d.params()[i].value = c.params()[i].value;
    d.params()[i].momentum = c.params()[i].momentum;
  }
  d.params_written();
  d.set_rng_state(c.seed(), c.step_counter());
  for (int t = 2; t < 4; t++) d.step(im[t % 2].data(), lb[t % 2].data(), N, sgd, true);
  a.params_to_host();
  d.params_to_host();
  expect_equal("weights: resumed vs uninterrupted", grads(d.params(), "value"), grads(a.params(), "value"));
  expect_equal("momentum: resumed vs uninterrupted", grads(d.params(), "momentum"), grads(a.params(), "momentum"));
  CHECK(d.step_counter() == 4 && a.step_counter() == 4 && d.seed() == 11, "step counters %llu / %llu, seed %llu",
        (unsigned long long)d.step_counter(), (unsigned long long)a.step_counter(), (unsigned long long)d.seed());
  cu::CudaNetwork e(cfg, 12, opt);
  CHECK(!bit_equal(grads(e.params(), "value"), grads(cu::CudaNetwork(cfg, 11, opt).params(), "value")),
        "another seed gives other weights");
}

// test_network.cpp's NaN refusal: a NaN loss throws before any weight or the step counter
// changes; fixing the weight lets the next step run.
static void test_nan_refused(const DeviceOptions& opt) {
  const NetConfig cfg = preset_config("tiny");
  cu::CudaNetwork net(cfg, 3, opt);
  Vec images;
  std::vector<int32_t> labels;
  batch_for(cfg, 2, 4, images, labels);
  net.params()[0].value[0] = NAN;  // passes relu and maxpool, as in PyTorch
  net.params_written();
  const Vec before = vec(net.params()[2].value);
  bool threw = false;
  ErrorCode code = ErrorCode::Internal;
  try {
    net.step(images.data(), labels.data(), 2, SgdConfig{}, false);
  } catch (const std::runtime_error& e) {
    threw = std::string(e.what()).find("NaN") != std::string::npos;
    code = error_code_of(e);
    std::printf("  refused: %s\n", e.what());
  }
  CHECK(threw, "a NaN loss throws an error that says NaN");
  CHECK(code == ErrorCode::NonFiniteLoss, "a NaN loss throws code NON_FINITE_LOSS, not %s", error_code_name(code));
  net.params_to_host();
  CHECK(vec(net.params()[2].value) == before && net.step_counter() == 0,
        "a NaN loss leaves the weights and the step counter untouched");
  net.params()[0].value[0] = 0.0f;
  net.params_written();
  const float loss = net.step(images.data(), labels.data(), 2, SgdConfig{}, false);
  CHECK(std::isfinite(loss) && net.step_counter() == 1, "after the fix a step runs (loss %g, counter %llu)", loss,
        (unsigned long long)net.step_counter());
}

// Construction refuses a bad config or bad options with std::invalid_argument naming it.
static void test_bad_options(const DeviceOptions& model) {
  auto message = [](const NetConfig& cfg, const DeviceOptions& opt) -> std::string {
    try {
      cu::CudaNetwork n(cfg, 1, opt);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  const NetConfig tiny = preset_config("tiny");
  DeviceOptions bad = model;
  bad.devices = {g_device_count};
  std::string m = message(tiny, bad);
  CHECK(m.find("does not exist") != std::string::npos, "a missing device id is refused with a message naming it: '%s'",
        m.c_str());
  bad = model;
  bad.precision = "fp16";
  m = message(tiny, bad);
  CHECK(m.find("fp16") != std::string::npos, "an unknown precision is refused, named: '%s'", m.c_str());
  bad = model;
  bad.parallel = "pipeline";
  m = message(tiny, bad);
  CHECK(m.find("pipeline") != std::string::npos, "an unknown parallel mode is refused, named: '%s'", m.c_str());
  NetConfig bad_groups = preset_config("alexnet-32");
  bad_groups.layers[4].groups = 3;
  m = message(bad_groups, model);
  CHECK(m.find("conv2") != std::string::npos, "a bad config names the layer: '%s'", m.c_str());
  // Through the C entry point the addon dlopens: the code comes back with the message.
  bad = model;
  bad.precision = "fp16";
  NetworkBackend* net = nullptr;
  char err[512] = {0};
  const int rc = alexnet_cuda_create(&tiny, 1, &bad, &net, err, sizeof err);
  CHECK(rc == (int)ErrorCode::BadArgument && !net && std::string(err).find("fp16") != std::string::npos,
        "alexnet_cuda_create returns BAD_ARGUMENT (%d) and the message: %d '%s'", (int)ErrorCode::BadArgument, rc, err);
  delete net;
  std::printf("  all refused with messages\n");
}

// test_network.cpp's test_error_codes on the CUDA backend, through what the addon uses (the
// NetworkBackend that alexnet_cuda_create returns): a call out of order is BAD_STATE, a bad
// label or batch size BAD_ARGUMENT, and neither leaves the network unusable.
static void test_error_codes(const DeviceOptions& opt) {
  auto code_of = [](auto fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      std::printf("  refused (%s): %s\n", error_code_name(error_code_of(e)), e.what());
      return error_code_of(e);
    }
    return ErrorCode::Internal;  // did not throw
  };
  const NetConfig cfg = preset_config("tiny");
  NetworkBackend* raw = nullptr;
  char err[512] = {0};
  const int rc = alexnet_cuda_create(&cfg, 3, &opt, &raw, err, sizeof err);
  std::unique_ptr<NetworkBackend> net(raw);
  CHECK(rc == 0 && net, "alexnet_cuda_create: %d '%s'", rc, err);
  if (!net) return;
  Vec images;
  std::vector<int32_t> labels;
  batch_for(cfg, 2, 4, images, labels);
  CHECK(code_of([&] { net->backward(); }) == ErrorCode::BadState, "backward before a forward: BAD_STATE");
  std::vector<int32_t> bad = labels;
  bad[1] = cfg.classes;
  CHECK(code_of([&] { net->forward(images.data(), bad.data(), 2, false); }) == ErrorCode::BadArgument,
        "a label out of range (= classes): BAD_ARGUMENT");
  bad[1] = -1;
  CHECK(code_of([&] { net->forward(images.data(), bad.data(), 2, true); }) == ErrorCode::BadArgument,
        "a negative label: BAD_ARGUMENT");
  CHECK(code_of([&] { net->forward(images.data(), labels.data(), 0, false); }) == ErrorCode::BadArgument,
        "batch size 0: BAD_ARGUMENT");
  CHECK(code_of([&] { net->backward(); }) == ErrorCode::BadState, "a refused forward loads nothing: still BAD_STATE");
  net->forward(images.data(), nullptr, 2, false);
  CHECK(code_of([&] { net->backward(); }) == ErrorCode::BadState, "backward after a forward without labels: BAD_STATE");
  const float loss = net->forward(images.data(), labels.data(), 2, false);
  net->backward();
  net->params_to_host();
  double g = 0;
  for (const Param& p : net->params())
    for (float v : p.grad) g += std::fabs(v);
  CHECK(std::isfinite(loss) && std::isfinite(g) && g > 0,
        "after the refusals a forward and backward run (loss %g, sum |grad| %g)", loss, g);
}

// set_layer_timing/layer_times (what bench_cuda --layers reports): one entry per layer,
// named and typed, non-negative times, some time in all; timing changes no result.
static void test_layer_timing(const DeviceOptions& opt) {
  const NetConfig cfg = preset_config("alexnet-32");
  const int N = 8;
  Vec images;
  std::vector<int32_t> labels;
  batch_for(cfg, N, 3, images, labels);
  cu::CudaNetwork timed(cfg, 7, opt), plain(cfg, 7, opt);
  timed.set_layer_timing(true);
  SgdConfig sgd;
  float lt = 0, lp = 0;
  for (int s = 0; s < 2; s++) {
    lt = timed.step(images.data(), labels.data(), N, sgd, true);
    lp = plain.step(images.data(), labels.data(), N, sgd, true);
  }
  CHECK(lt == lp, "timing changes no result (loss %.9g vs %.9g)", lt, lp);
  const std::vector<cu::LayerTime> t = timed.layer_times();
  CHECK(t.size() == cfg.layers.size(), "%zu layer times for %zu layers", t.size(), cfg.layers.size());
  double fsum = 0, bsum = 0;
  bool ok = true;
  for (size_t i = 0; i < t.size() && i < cfg.layers.size(); i++) {
    std::printf("  %-8s %-8s forward %.4f ms  backward %.4f ms\n", t[i].name.c_str(), t[i].type.c_str(), t[i].forward_ms,
                t[i].backward_ms);
    ok = ok && t[i].forward_ms >= 0 && t[i].backward_ms >= 0 && !t[i].name.empty() &&
         t[i].type == layer_type_name(cfg.layers[i].type) &&
         (cfg.layers[i].name.empty() || t[i].name == cfg.layers[i].name);
    fsum += t[i].forward_ms;
    bsum += t[i].backward_ms;
  }
  CHECK(ok, "every layer time is named, typed and non-negative");
  CHECK(fsum > 0 && bsum > 0, "layer times sum to forward %.4f ms, backward %.4f ms", fsum, bsum);
  timed.set_layer_timing(false);
  timed.step(images.data(), labels.data(), N, sgd, true);  // off again: still runs
}

// ---- registration ------------------------------------------------------------------------

static void register_tests() {
  using P = cu::Precision;
  struct NamedP {
    P p;
    const char* name;
  };
  const NamedP precisions[] = {{P::FP32, "fp32"}, {P::TF32, "tf32"}, {P::BF16, "bf16"}};
  struct ConvShape {
    int N, C, H, W, O, K, S, P, G;
    const char* note;
  };
  const ConvShape convs[] = {{2, 3, 13, 13, 8, 3, 1, 1, 1, ""},
                             {3, 8, 9, 9, 12, 5, 2, 2, 2, ""},
                             {2, 3, 35, 35, 16, 11, 4, 0, 1, " (conv1's shape, smaller)"},
                             {2, 16, 7, 7, 12, 3, 1, 1, 1, " (conv3: groups cross the columns)"},
                             {2, 8, 6, 6, 8, 3, 1, 1, 4, ""},
                             {16, 8, 32, 32, 8, 3, 1, 1, 1, " (weight gradient split over K: 8 equal slices)"},
                             {13, 8, 32, 32, 8, 3, 1, 1, 2, " (split over K with a shorter last slice)"}};
  char name[160];
  for (const ConvShape& c : convs)
    for (const NamedP& p : precisions) {
      std::snprintf(name, sizeof name, "layer conv N%d C%d %dx%d O%d K%d S%d P%d G%d %s%s", c.N, c.C, c.H, c.W, c.O, c.K,
                    c.S, c.P, c.G, p.name, c.note);
      add(name, [c, p] { test_conv(p.p, c.N, c.C, c.H, c.W, c.O, c.K, c.S, c.P, c.G); });
    }
  add("layer relu", [] { test_relu(); });
  add("layer lrn N2 C8 5x5 G2 size5", [] { test_lrn(2, 8, 5, 5, 2, 5); });
  add("layer lrn N2 C7 4x3 G1 size4", [] { test_lrn(2, 7, 4, 3, 1, 4); });
  add("layer maxpool N2 C3 13x13 K3 S2 (ties)", [] { test_maxpool(2, 3, 13, 13, 3, 2); });
  add("layer maxpool N1 C2 8x9 K2 S2 (ties)", [] { test_maxpool(1, 2, 8, 9, 2, 2); });
  const int linears[][3] = {{4, 50, 30}, {3, 20, 5}};
  for (const auto& l : linears)
    for (const NamedP& p : precisions) {
      std::snprintf(name, sizeof name, "layer linear N%d I%d O%d %s", l[0], l[1], l[2], p.name);
      const int N = l[0], I = l[1], O = l[2];
      add(name, [N, I, O, p] { test_linear(p.p, N, I, O); });
    }
  add("layer dropout (masks equal rng.h's)", [] { test_dropout(); });
  add("layer softmax_xent N5 K7", [] { test_softmax_xent(5, 7); });
  add("layer softmax_xent N3 K1000", [] { test_softmax_xent(3, 1000); });
  add("layer sgd (fused)", [] { test_sgd(); });

  DeviceOptions model;
  model.device = "cuda";
  DeviceOptions seq = model;
  seq.sequential = true;
  DeviceOptions data = model;
  data.parallel = "data";
  data.devices = {0, 0};  // two replicas on one device: the same peer-copy code path
  DeviceOptions one = model;
  one.parallel = "data";
  one.devices = {0};  // one column: one replica, one stream
  DeviceOptions bf16 = model, tf32 = model;
  bf16.precision = "bf16";
  tf32.precision = "tf32";

  add("net tiny vs cpu: model fp32, batch 4, 3 steps",
      [=] { test_network_vs_cpu(preset_config("tiny"), {4, 4, 4}, model); });
  add("net alexnet-32 vs cpu: model fp32, batch 8, 2 steps",
      [=] { test_network_vs_cpu(preset_config("alexnet-32"), {8, 8}, model); });
  add("net alexnet vs cpu: model fp32, batch 2, 2 steps",
      [=] { test_network_vs_cpu(preset_config("alexnet"), {2, 2}, model); });
  add("net alexnet-32 vs cpu: data 2 replicas fp32, batch 5 (3 + 2), 2 steps",
      [=] { test_network_vs_cpu(preset_config("alexnet-32"), {5, 5}, data); });
  add("net tiny vs cpu: data 2 replicas fp32, batch 4 then 1 (an empty replica)",
      [=] { test_network_vs_cpu(preset_config("tiny"), {4, 1, 1}, data); });
  add("net alexnet-32 vs cpu: one column fp32, batch 8, 2 steps",
      [=] { test_network_vs_cpu(preset_config("alexnet-32"), {8, 8}, one); });
  add("net alexnet-32+lrn1 vs cpu: model fp32 (LRN gathers, conv2 over a full input), batch 8, 2 steps",
      [=] { test_network_vs_cpu(alexnet32_lrn1(), {8, 8}, model); });
  add("net alexnet-32+fullfc vs cpu: model fp32 (LRN and dropout over a full input, fc6 over a full input)",
      [=] { test_network_vs_cpu(alexnet32_fullfc(), {8, 8}, model); });
  add("net alexnet-32 vs cpu: model bf16, batch 8, 2 steps",
      [=] { test_network_vs_cpu(preset_config("alexnet-32"), {8, 8}, bf16); });
  add("net alexnet-32 vs cpu: model tf32, batch 8, 2 steps",
      [=] { test_network_vs_cpu(preset_config("alexnet-32"), {8, 8}, tf32); });
  add("net eval forward + backward vs cpu: tiny and alexnet-32, model fp32", [=] {
    test_eval_backward(preset_config("tiny"), 4, model);
    test_eval_backward(preset_config("alexnet-32"), 4, model);
  });

  add("infer tiny vs cpu: model fp32, batch 1, 32, 1", [=] { test_inference(preset_config("tiny"), {1, 32, 1}, model); });
  add("infer alexnet-32 vs cpu: model fp32, batch 1, 32, 1",
      [=] { test_inference(preset_config("alexnet-32"), {1, 32, 1}, model); });
  add("infer alexnet vs cpu: model fp32, batch 1", [=] { test_inference(preset_config("alexnet"), {1}, model); });
  add("infer tiny vs cpu: data 2 replicas fp32, batch 1 (an empty replica), 32",
      [=] { test_inference(preset_config("tiny"), {1, 32}, data); });

  add("api resume from copied state: alexnet-32, model, bitwise", [=] { test_resume(model); });
  add("api a NaN loss is refused: tiny, model", [=] { test_nan_refused(model); });
  add("api bad device, precision, parallel and config are refused", [=] { test_bad_options(model); });
  add("api error codes: backward before a forward BAD_STATE, a bad label BAD_ARGUMENT: tiny, model",
      [=] { test_error_codes(model); });
  add("api layer timing: alexnet-32, one column", [=] { test_layer_timing(one); });
  add("api layer timing: alexnet-32, two columns", [=] { test_layer_timing(model); });

  add("streams tiny: two columns on two streams vs one stream",
      [=] { test_cuda_vs_cuda(preset_config("tiny"), 4, 2, model, seq, 1e-5); });
  add("streams alexnet-64: two columns on two streams vs one stream",
      [=] { test_cuda_vs_cuda(preset_config("alexnet-64"), 16, 3, model, seq, 1e-5); });
  add("streams alexnet-32+lrn1: two columns on two streams vs one stream",
      [=] { test_cuda_vs_cuda(alexnet32_lrn1(), 8, 2, model, seq, 1e-5); });
  add("placement data parallel (2 replicas) vs model parallel: alexnet-64",
      [=] { test_cuda_vs_cuda(preset_config("alexnet-64"), 16, 3, data, model, 1e-5); });
  add("placement two columns on two GPUs vs one GPU: alexnet", [=] {
    if (g_device_count < 2) return skip_test("needs two CUDA devices, this machine has one");
    DeviceOptions two = model;
    two.devices = {0, 1};
    test_cuda_vs_cuda(preset_config("alexnet"), 8, 2, two, model, 1e-5);
  });
  add("placement data parallel on two GPUs vs model parallel: alexnet-64", [=] {
    if (g_device_count < 2) return skip_test("needs two CUDA devices, this machine has one");
    DeviceOptions data2 = data;
    data2.devices = {0, 1};
    test_cuda_vs_cuda(preset_config("alexnet-64"), 16, 2, data2, model, 1e-5);
  });
}

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  setvbuf(stderr, nullptr, _IONBF, 0);
  register_tests();
  std::vector<std::string> filters;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--list") {
      for (const TestCase& t : g_tests) std::printf("%s\n", t.name.c_str());
      return 0;
    }
    if (a == "-h" || a == "--help") {
      std::printf("usage: test_cuda [--list] [substring...]  (runs the tests whose name contains a substring)\n");
      return 0;
    }
    filters.push_back(a);
  }
  std::vector<const TestCase*> selected;
  for (const TestCase& t : g_tests) {
    bool match = filters.empty();
    for (const std::string& f : filters) match = match || t.name.find(f) != std::string::npos;
    if (match) selected.push_back(&t);
  }
  if (selected.empty()) {
    std::fprintf(stderr, "test_cuda: no test name contains any of the given substrings (see --list)\n");
    return 2;
  }

  const cudaError_t e = cudaGetDeviceCount(&g_device_count);
  if (e != cudaSuccess || g_device_count == 0) {
    std::printf("SKIP test_cuda: no CUDA device (%s): run it on a GPU machine (scripts/gpu-check.sh)\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return kSkip;
  }
  for (int d = 0; d < g_device_count; d++) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, d) == cudaSuccess)
      std::printf("device %d: %s (sm_%d%d, %.0f GiB)\n", d, prop.name, prop.major, prop.minor,
                  prop.totalGlobalMem / 1073741824.0);
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::printf("running %zu of %zu tests\n", selected.size(), g_tests.size());
  for (const TestCase* t : selected) run_test(*t);
  if (g_skipped) std::printf("%d test(s) skipped (the SKIP lines above say why)\n", g_skipped);
  g_gpu.reset();
  return check_summary();
}
