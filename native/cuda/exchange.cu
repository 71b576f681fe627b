// Local halves of the column exchanges: placing a column's channels inside a full
// tensor (a 2D copy, one row per sample) and summing a received gradient slice. The peer
// copies themselves are in cuda_network.cu.
#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

__global__ void add_channels_kernel(float* dst, const float* full, int C, int c0, const float* other,
                                    int N, int Cc, int64_t hw) {
  const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (idx >= (int64_t)N * Cc * hw) return;
  const int64_t q = idx % hw, c = (idx / hw) % Cc, n = idx / (hw * Cc);
  dst[idx] = full[(n * C + c0 + c) * hw + q] + other[idx];
}

__global__ void add_inplace_kernel(float* y, const float* x, int64_t n) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) y[i] += x[i];
}

}  // namespace

void copy_channels(float* dst, int Cd, int dc0, const float* src, int Cs, int sc0, int N, int Cc,
                   int64_t HW, cudaStream_t stream) {
  CUDA_ASSERT(N > 0 && Cc > 0 && dc0 + Cc <= Cd && sc0 + Cc <= Cs);
  const size_t f = sizeof(float);
  CUDA_CHECK(cudaMemcpy2DAsync(dst + dc0 * HW, Cd * HW * f, src + sc0 * HW, Cs * HW * f, Cc * HW * f,
                               (size_t)N, cudaMemcpyDeviceToDevice, stream));
}

void add_channels(float* dst, const float* full, int C, int c0, const float* other, int N, int Cc,
                  int64_t HW, cudaStream_t stream) {
  CUDA_ASSERT(N > 0 && Cc > 0 && c0 + Cc <= C);
  const int64_t n = (int64_t)N * Cc * HW;
  add_channels_kernel<<<blocks_for(n), 256, 0, stream>>>(dst, full, C, c0, other, N, Cc, HW);
  LAUNCH_CHECK("add_channels_kernel");
}

void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream) {
  CUDA_ASSERT(n > 0);
  add_inplace_kernel<<<blocks_for(n), 256, 0, stream>>>(y, x, n);
  LAUNCH_CHECK("add_inplace_kernel");
}

}  // namespace cuda
}  // namespace alexnet
