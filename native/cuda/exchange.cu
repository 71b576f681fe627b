// The column exchanges' pieces: placing a column's channels inside a full tensor (a 2D
// copy, one row per sample), on one device or straight from one device to another, and
// summing a received gradient slice.
#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

// I: the index type, int where the tensors have under 2^31 elements, else int64_t.
template <typename I>
__global__ void add_channels_kernel(float* dst, const float* full, int C, int c0, const float* other,
                                    int N, int Cc, I hw) {
  const I idx = blockIdx.x * (I)blockDim.x + threadIdx.x;
  if (idx >= (I)N * Cc * hw) return;
  const I row = idx / hw, q = idx - row * hw, n = row / Cc, c = row - n * Cc;
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

void copy_channels_peer(float* dst, int dst_dev, int Cd, int dc0, const float* src, int src_dev, int Cs,
                        int sc0, int N, int Cc, int64_t HW, cudaStream_t stream) {
  if (dst_dev == src_dev) return copy_channels(dst, Cd, dc0, src, Cs, sc0, N, Cc, HW, stream);
  CUDA_ASSERT(N > 0 && Cc > 0 && dc0 + Cc <= Cd && sc0 + Cc <= Cs);
  const size_t f = sizeof(float);
  cudaMemcpy3DPeerParms p = {};
  p.srcPtr = make_cudaPitchedPtr(const_cast<float*>(src) + sc0 * HW, Cs * HW * f, Cc * HW * f, (size_t)N);
  p.srcDevice = src_dev;
  p.dstPtr = make_cudaPitchedPtr(dst + dc0 * HW, Cd * HW * f, Cc * HW * f, (size_t)N);
  p.dstDevice = dst_dev;
  p.extent = make_cudaExtent(Cc * HW * f, (size_t)N, 1);
  CUDA_CHECK(cudaMemcpy3DPeerAsync(&p, stream));
}

void add_channels(float* dst, const float* full, int C, int c0, const float* other, int N, int Cc,
                  int64_t HW, cudaStream_t stream) {
  CUDA_ASSERT(N > 0 && Cc > 0 && c0 + Cc <= C);
  const int64_t n = (int64_t)N * Cc * HW;
  if ((int64_t)N * C * HW < INT32_MAX)
    add_channels_kernel<int><<<blocks_for(n), 256, 0, stream>>>(dst, full, C, c0, other, N, Cc, (int)HW);
  else
    add_channels_kernel<int64_t><<<blocks_for(n), 256, 0, stream>>>(dst, full, C, c0, other, N, Cc, HW);
  LAUNCH_CHECK("add_channels_kernel");
}

void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream) {
  CUDA_ASSERT(n > 0);
  add_inplace_kernel<<<blocks_for(n), 256, 0, stream>>>(y, x, n);
  LAUNCH_CHECK("add_inplace_kernel");
}

}  // namespace cuda
}  // namespace alexnet
