// Row-major GEMMs on cuBLAS, and the precision they run in. cuBLAS is column-major; a
// row-major (M,N) matrix is its transpose there, so C = op(A) op(B) is computed as
// C^T = op(B)^T op(A)^T. fp32 GEMMs go through SGEMM, whose math mode (fp32 or TF32) is
// set on the handle by GemmContext::bind; bf16 GEMMs through GemmEx with fp32
// accumulation and an fp32 output.
#include <cuda_bf16.h>

#include <algorithm>
#include <stdexcept>

#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

__global__ void to_bf16_kernel(uint16_t* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __bfloat16_as_ushort(__float2bfloat16_rn(src[i]));
}

cublasOperation_t op(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

// C[i][j] (row stride ldc) = beta * C[i][j] + sum over s of split[s][i][j], s in order.
__global__ void sum_slices_kernel(float* C, int ldc, const float* split, int slices, int M, int N, float beta) {
  const int64_t mn = (int64_t)M * N;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < mn; k += (int64_t)gridDim.x * blockDim.x) {
    float sum = 0.0f;
    for (int s = 0; s < slices; s++) sum += split[s * mn + k];
    const int64_t i = k / N, j = k - i * N;
    float* c = C + i * ldc + j;
    *c = beta == 0.0f ? sum : beta * *c + sum;
  }
}

}  // namespace

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "tf32") return Precision::TF32;
  if (name == "bf16") return Precision::BF16;
  throw std::invalid_argument("precision must be 'fp32', 'tf32' or 'bf16', not '" + name + "'");
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
    default: return "fp32";
  }
}

void GemmContext::bind(cudaStream_t stream) {
  CUBLAS_CHECK(cublasSetStream(blas, stream));
  CUBLAS_CHECK(cublasSetMathMode(blas, precision == Precision::TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                     : CUBLAS_DEFAULT_MATH));
}

void matmul(float* C, const float* A, const float* B, bool trans_a, bool trans_b, int M, int N,
            int K, int lda, int ldb, int ldc, float alpha, float beta, cublasHandle_t blas) {
  CUDA_ASSERT(M > 0 && N > 0 && K > 0);
  CUBLAS_CHECK(cublasSgemm(blas, op(trans_b), op(trans_a), N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
}

void matmul_bf16(float* C, const uint16_t* A, const uint16_t* B, bool trans_a, bool trans_b, int M,
                 int N, int K, int lda, int ldb, int ldc, float alpha, float beta,
                 cublasHandle_t blas) {
  CUDA_ASSERT(M > 0 && N > 0 && K > 0);
  CUBLAS_CHECK(cublasGemmEx(blas, op(trans_b), op(trans_a), N, M, K, &alpha, B, CUDA_R_16BF, ldb, A,
                            CUDA_R_16BF, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
}

void matmul_batched(float* C, const void* A, const void* B, bool bf16, bool trans_a, bool trans_b, int M,
                    int N, int K, int lda, int ldb, int ldc, int64_t stride_a, int64_t stride_b,
                    int64_t stride_c, int batch, float alpha, float beta, cublasHandle_t blas) {
  CUDA_ASSERT(M > 0 && N > 0 && K > 0 && batch > 0);
  if (bf16)
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(blas, op(trans_b), op(trans_a), N, M, K, &alpha, B, CUDA_R_16BF,
                                            ldb, stride_b, A, CUDA_R_16BF, lda, stride_a, &beta, C,
                                            CUDA_R_32F, ldc, stride_c, batch, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT));
  else
    CUBLAS_CHECK(cublasSgemmStridedBatched(blas, op(trans_b), op(trans_a), N, M, K, &alpha,
                                           static_cast<const float*>(B), ldb, stride_b,
                                           static_cast<const float*>(A), lda, stride_a, &beta, C, ldc,
                                           stride_c, batch));
}

void matmul_split_k(float* C, const void* A, const void* B, bool bf16, int M, int N, int K, int lda,
                    int ldb, int ldc, float beta, GemmContext& g, cudaStream_t stream) {
  CUDA_ASSERT(M > 0 && N > 0 && K > 0);
  if (!g.sm_count) {
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&g.sm_count, cudaDevAttrMultiProcessorCount, device));
  }
  // About two waves of 128x128 output tiles, each slice at least 2048 long, whole
  // multiples of 8 (so every slice starts 16-byte aligned when A and B do).
  const int64_t tiles = (int64_t)((M + 127) / 128) * ((N + 127) / 128);
  const int64_t want = std::min<int64_t>(std::max<int64_t>(1, 2 * g.sm_count / tiles), K / 2048);
  const size_t esize = bf16 ? 2 : 4;
  const char* a = static_cast<const char*>(A);
  const char* b = static_cast<const char*>(B);
  if (want <= 1) {  // enough tiles already: one GEMM
    matmul_batched(C, A, B, bf16, false, true, M, N, K, lda, ldb, ldc, 0, 0, 0, 1, 1.0f, beta, g.blas);
    return;
  }
  const int ks = (int)(((K + want - 1) / want + 7) / 8 * 8);
  const int full = K / ks, rest = K - full * ks, slices = full + (rest ? 1 : 0);
  const int64_t mn = (int64_t)M * N;
  g.split.resize((size_t)slices * mn);
  // Slice s: A[:, s*ks : (s+1)*ks] (row stride lda) @ B[:, s*ks : (s+1)*ks]^T -> split[s] (M, N).
  if (full)
    matmul_batched(g.split.data(), A, B, bf16, false, true, M, N, ks, lda, ldb, N, ks, ks, mn, full, 1.0f, 0.0f,
                   g.blas);
  if (rest)
    matmul_batched(g.split.data() + full * mn, a + (size_t)full * ks * esize, b + (size_t)full * ks * esize, bf16,
                   false, true, M, N, rest, lda, ldb, N, 0, 0, 0, 1, 1.0f, 0.0f, g.blas);
  sum_slices_kernel<<<(unsigned)std::min<int64_t>(blocks_for(mn), 65535LL * 4), 256, 0, stream>>>(
      C, ldc, g.split.data(), slices, M, N, beta);
  LAUNCH_CHECK("sum_slices_kernel");
}

void to_bf16(uint16_t* dst, const float* src, int64_t n, cudaStream_t stream) {
  CUDA_ASSERT(n > 0);
  to_bf16_kernel<<<(unsigned)std::min<int64_t>(blocks_for(n), 65535LL * 4), 256, 0, stream>>>(dst, src, n);
  LAUNCH_CHECK("to_bf16_kernel");
}

}  // namespace cuda
}  // namespace alexnet
