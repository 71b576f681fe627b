// Inverted dropout with the counter-based mask of dropout.cpp: element i at step t keeps
// with probability 1-p, from draw (seed, stream, t, i). The draw below is rng.h's
// splitmix64 chain, line for line, as device code; test_cuda checks the masks equal the
// CPU's bit for bit.
#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

__device__ __forceinline__ float rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter,
                                             uint64_t index) {
  uint64_t key = splitmix64(seed ^ splitmix64(stream + 0x632be59bd9b4e019ULL));
  key = splitmix64(key ^ counter);
  return (float)(splitmix64(key ^ index) >> 40) * (1.0f / 16777216.0f);
}

// I: the index type of the slice, int where it has under 2^31 elements (32-bit division
// is several times cheaper than 64-bit), else int64_t. The draw's index is 64-bit.
template <typename I>
__global__ void dropout_forward_kernel(float* out, float* mask, const float* inp, int N, int n0,
                                       int Cc, int c0, int C, I hw, float p, float keep_scale,
                                       uint64_t seed, uint64_t rng_stream, uint64_t counter) {
  const I idx = blockIdx.x * (I)blockDim.x + threadIdx.x;
  if (idx >= (I)N * Cc * hw) return;
  const I row = idx / hw, q = idx - row * hw, n = row / Cc, c = row - n * Cc;
  const uint64_t global = (((uint64_t)(n0 + n) * C + c0 + c) * (uint64_t)hw + (uint64_t)q);
  const float m = rng_uniform(seed, rng_stream, counter, global) >= p ? keep_scale : 0.0f;
  mask[idx] = m;
  out[idx] = inp[idx] * m;
}

__global__ void dropout_backward_kernel(float* dinp, const float* dout, const float* mask, int64_t n) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) dinp[i] = dout[i] * mask[i];
}

}  // namespace

void dropout_forward(float* out, float* mask, const float* inp, int N, int n0, int Cc, int c0,
                     int C, int HW, float p, uint64_t seed, uint64_t rng_stream, uint64_t counter,
                     cudaStream_t stream) {
  CUDA_ASSERT(N > 0 && n0 >= 0 && Cc > 0 && c0 >= 0 && c0 + Cc <= C && HW > 0);
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const int64_t n = (int64_t)N * Cc * HW;
  if (n < INT32_MAX)
    dropout_forward_kernel<int><<<blocks_for(n), 256, 0, stream>>>(out, mask, inp, N, n0, Cc, c0, C, HW, p,
                                                                   keep_scale, seed, rng_stream, counter);
  else
    dropout_forward_kernel<int64_t><<<blocks_for(n), 256, 0, stream>>>(out, mask, inp, N, n0, Cc, c0, C, HW, p,
                                                                       keep_scale, seed, rng_stream, counter);
  LAUNCH_CHECK("dropout_forward_kernel");
}

void dropout_backward(float* dinp, const float* dout, const float* mask, int64_t n,
                      cudaStream_t stream) {
  CUDA_ASSERT(n > 0);
  dropout_backward_kernel<<<blocks_for(n), 256, 0, stream>>>(dinp, dout, mask, n);
  LAUNCH_CHECK("dropout_backward_kernel");
}

}  // namespace cuda
}  // namespace alexnet
