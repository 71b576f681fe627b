// Row-major SGEMM on cuBLAS. cuBLAS is column-major; a row-major (M,N) matrix is its
// transpose there, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T. The math mode
// (fp32 or TF32) is a property of the handle (CudaNetwork sets it).
#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {

void matmul(float* C, const float* A, const float* B, bool trans_a, bool trans_b, int M, int N,
            int K, int lda, int ldb, int ldc, float alpha, float beta, cublasHandle_t blas) {
  CUDA_ASSERT(M > 0 && N > 0 && K > 0);
  CUBLAS_CHECK(cublasSgemm(blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                           trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, A, lda,
                           &beta, C, ldc));
}

}  // namespace cuda
}  // namespace alexnet
