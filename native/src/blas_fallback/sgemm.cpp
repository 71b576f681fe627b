// The fallback SGEMM behind blas_fallback/cblas.h: row-major C = alpha*op(A)op(B) + beta*C
// (column-major calls are mapped to row-major by transposing the problem). Blocks of
// (row, 256 columns) run in parallel; each C element is summed in k order.
#include "cblas.h"

#include <algorithm>
#include <vector>

namespace {

void sgemm_row_major(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                     const float* B, int ldb, float beta, float* C, int ldc) {
  constexpr int kBlock = 256;
  const int blocks = (N + kBlock - 1) / kBlock;
#pragma omp parallel for collapse(2) schedule(dynamic, 4)
  for (int i = 0; i < M; i++)
    for (int jb = 0; jb < blocks; jb++) {
      const int j0 = jb * kBlock, j1 = std::min(N, j0 + kBlock);
      float acc[kBlock] = {};
      if (!tb) {
        for (int k = 0; k < K; k++) {
          const float a = ta ? A[(long)k * lda + i] : A[(long)i * lda + k];
          const float* b = B + (long)k * ldb;
          for (int j = j0; j < j1; j++) acc[j - j0] += a * b[j];
        }
      } else {
        for (int j = j0; j < j1; j++) {
          const float* b = B + (long)j * ldb;
          float s = 0.0f;
          if (!ta)
            for (int k = 0; k < K; k++) s += A[(long)i * lda + k] * b[k];
          else
            for (int k = 0; k < K; k++) s += A[(long)k * lda + i] * b[k];
          acc[j - j0] = s;
        }
      }
      float* c = C + (long)i * ldc;
      for (int j = j0; j < j1; j++) c[j] = (beta == 0.0f ? 0.0f : beta * c[j]) + alpha * acc[j - j0];
    }
}

}  // namespace

extern "C" void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans_a,
                            enum CBLAS_TRANSPOSE trans_b, int M, int N, int K, float alpha,
                            const float* A, int lda, const float* B, int ldb, float beta, float* C,
                            int ldc) {
  const bool ta = trans_a != CblasNoTrans, tb = trans_b != CblasNoTrans;
  if (order == CblasRowMajor)
    sgemm_row_major(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else  // column-major C = op(A)op(B) is row-major C^T = op(B)^T op(A)^T
    sgemm_row_major(tb, ta, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);
}

extern "C" void openblas_set_num_threads(int) {}
