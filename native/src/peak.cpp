// The compute roof for `alexnet bench`: the fp32 FMA rate of every thread's registers, and
// a large SGEMM on the same threads. The FMA loop keeps kChains independent accumulators of
// 16 floats (GCC vector extensions: one zmm register with AVX-512, two ymm with AVX2, four
// NEON registers), enough to cover the FMA latency on every port; a*b+c contracts to an
// FMA (GCC's default), so the loop is back-to-back vector FMAs whatever the vector width.
#include "peak.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "layers.h"

namespace alexnet {
namespace {

constexpr int kChains = 12;
// About 65 ms a round on a 3.7 GHz core: long against the thread team's start.
constexpr long kFmaIters = 20'000'000;
typedef float v16 __attribute__((vector_size(64)));

double seconds_of(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double fma_gflops(int threads) {
  double best = 0;
  volatile float sink = 0;
  for (int round = 0; round < 4; round++) {  // round 0 wakes the threads and the clocks
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    {
      v16 acc[kChains];
      for (int c = 0; c < kChains; c++) acc[c] = (v16){} + (1.0f + 1e-3f * (c + omp_get_thread_num()));
      const v16 a = (v16){} + 0.9999999f, b = (v16){} + 1e-7f;
      for (long i = 0; i < kFmaIters; i++)
        for (int c = 0; c < kChains; c++) acc[c] = acc[c] * a + b;
      float s = 0;
      for (int c = 0; c < kChains; c++)
        for (int l = 0; l < 16; l++) s += acc[c][l];
#pragma omp atomic
      sink += s;
    }
    const double flops = 2.0 * 16 * threads * kFmaIters * kChains;
    if (round > 0) best = std::max(best, flops / seconds_of(t0) / 1e9);
  }
  return best;
}

double sgemm_gflops() {
  const int n = 1536;
  std::vector<float> a((size_t)n * n, 0.5f), b((size_t)n * n, 0.25f), c((size_t)n * n);
  double best = 0;
  for (int round = 0; round < 3; round++) {
    const auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    best = std::max(best, 2.0 * n * n * n / seconds_of(t0) / 1e9);
  }
  return best;
}

}  // namespace

PeakFlops measure_peak_flops(int threads) {
  const int t = threads > 0 ? threads : default_compute_threads();
  set_compute_threads(t);
  return {fma_gflops(t), sgemm_gflops()};
}

}  // namespace alexnet
