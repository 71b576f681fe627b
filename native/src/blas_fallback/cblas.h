// A minimal stand-in for OpenBLAS's cblas.h when the native library is configured with
// -DALEXNET_BLAS=OFF (a GPU machine without libopenblas: gpu-check.sh). It declares the
// only BLAS routines the CPU backend calls; sgemm.cpp implements them with plain OpenMP
// loops, slow but exact enough to serve as the CPU reference in test_cuda.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans_a, enum CBLAS_TRANSPOSE trans_b,
                 int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc);
void openblas_set_num_threads(int threads);

#ifdef __cplusplus
}
#endif
