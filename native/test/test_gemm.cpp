// The layers' GEMM in bf16 (gemm_bf16.cpp) against a double-precision product of the same
// bf16-rounded inputs: every transpose, sizes off every block edge (M past 12-row panels, N
// past 32-column panels, K odd and past a 512 block), alpha/beta, beta 0 over a C full of
// NaN (not read, as in BLAS); the same bits on one thread and on all; and against fp32 within
// bf16's rounding. Then a timing beside OpenBLAS's SGEMM. Skipped (and says so) on a CPU
// without AVX512_BF16.
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "check.h"
#include "gemm.h"
#include "layers.h"
#include "rng.h"

using namespace alexnet;
using Vec = std::vector<float>;

static Vec randn(size_t n, uint64_t stream) {
  Vec v(n);
  for (size_t i = 0; i < n; i++) v[i] = (float)rng_normal(11, stream, 0, i);
  return v;
}

static void test_against_reference(bool ta, bool tb, int M, int N, int K, float alpha, float beta) {
  const int lda = ta ? M + 3 : K + 1, ldb = tb ? K + 2 : N + 5, ldc = N + 7;
  Vec A = randn((size_t)(ta ? K : M) * lda, 1), B = randn((size_t)(tb ? N : K) * ldb, 2),
      C0 = randn((size_t)M * ldc, 3);
  if (beta == 0.0f) C0.assign(C0.size(), std::numeric_limits<float>::quiet_NaN());
  auto a = [&](int i, int k) { return (double)round_to_bf16(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]); };
  auto b = [&](int k, int j) { return (double)round_to_bf16(tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]); };
  Vec C = C0, C1 = C0, F = C0;
  gemm_bf16(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  set_compute_threads(1);
  gemm_bf16(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C1.data(), ldc);
  set_compute_threads(0);
  gemm(Precision::Fp32, ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, F.data(), ldc);
  double worst = 0, worst_fp32 = 0;
  bool same = true, untouched = true;
  for (int i = 0; i < M; i++) {
    for (int j = 0; j < N; j++) {
      double acc = 0, scale = 0;
      for (int k = 0; k < K; k++) {
        acc += a(i, k) * b(k, j);
        scale += std::fabs(a(i, k) * b(k, j));
      }
      const double c0 = beta == 0.0f ? 0.0 : (double)C0[(size_t)i * ldc + j];
      const double want = alpha * acc + beta * c0, tol = std::fabs(alpha) * scale + std::fabs(beta * c0) + 1e-30;
      const float got = C[(size_t)i * ldc + j];
      worst = std::max(worst, std::fabs(got - want) / tol);
      worst_fp32 = std::max(worst_fp32, std::fabs(got - (double)F[(size_t)i * ldc + j]) / tol);
      same &= got == C1[(size_t)i * ldc + j];
    }
    for (int j = N; j < ldc; j++) untouched &= std::isnan(C[(size_t)i * ldc + j]) == std::isnan(C0[(size_t)i * ldc + j]);
  }
  char name[96];
  std::snprintf(name, sizeof name, "gemm_bf16 %c%c M%d N%d K%d alpha %g beta %g", ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, beta);
  CHECK(worst < 1e-6, "%s: differs from the double product of the bf16 inputs by %.3g of the sum of |terms|", name, worst);
  CHECK(worst_fp32 < 2e-2, "%s: differs from fp32 by %.3g of the sum of |terms|, more than bf16 rounding", name, worst_fp32);
  CHECK(same, "%s: the same bits on one thread and on all", name);
  CHECK(untouched, "%s: nothing written past N in a row", name);
  std::printf("%-48s %.2e of |terms| from exact, %.2e from fp32\n", name, worst, worst_fp32);
}

static void bench(int M, int N, int K) {
  Vec A = randn((size_t)M * K, 4), B = randn((size_t)K * N, 5), C((size_t)M * N);
  double best[2] = {1e9, 1e9};
  for (int r = 0; r < 4; r++)
    for (int p = 0; p < 2; p++) {
      const auto t0 = std::chrono::steady_clock::now();
      gemm(p ? Precision::Bf16 : Precision::Fp32, false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r) best[p] = std::min(best[p], t);
    }
  std::printf("timing M%d N%d K%d (%d threads): fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s (x%.2f)\n", M, N, K,
              omp_get_max_threads(), 2.0 * M * N * K / best[0] / 1e9, 2.0 * M * N * K / best[1] / 1e9, best[0] / best[1]);
}

int main() {
  set_compute_threads(0);
  if (!bf16_gemm_available()) {
    std::printf("skipped: this CPU has no AVX512_BF16 (bf16 GEMMs fall back to fp32)\n");
    CHECK(parse_precision("bf16") == Precision::Bf16, "parse_precision still parses bf16");
    return check_summary();
  }
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      test_against_reference(ta, tb, 29, 71, 37, 1.0f, 0.0f);
      test_against_reference(ta, tb, 12, 32, 1100, 0.5f, 1.0f);  // K past two 512 blocks
    }
  test_against_reference(false, false, 1, 1, 1, 2.0f, -1.0f);
  test_against_reference(false, true, 37, 5, 63, 1.0f, 1.0f);
  bench(256, 2048, 1024);
  bench(32, 225, 400);
  return check_summary();
}
