// Softmax cross-entropy, as softmax_xent.cpp: per row the max, the sum of exp in double,
// probabilities and the per-sample loss log_sum - (z_label - max) in double. One block
// per row. The mean over the batch is taken by the caller on the host, in sample order.
#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__global__ void softmax_xent_forward_kernel(float* probs, double* losses, const float* logits,
                                            const int32_t* labels, int K) {
  __shared__ float smax[kThreads];
  __shared__ double ssum[kThreads];
  const int n = blockIdx.x;
  const float* z = logits + (int64_t)n * K;
  float* q = probs + (int64_t)n * K;
  float m = z[0];
  for (int k = threadIdx.x; k < K; k += blockDim.x) m = z[k] > m ? z[k] : m;
  smax[threadIdx.x] = m;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s && smax[threadIdx.x + s] > smax[threadIdx.x])
      smax[threadIdx.x] = smax[threadIdx.x + s];
    __syncthreads();
  }
  m = smax[0];
  double sum = 0.0;
  for (int k = threadIdx.x; k < K; k += blockDim.x) sum += exp((double)(z[k] - m));
  ssum[threadIdx.x] = sum;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) ssum[threadIdx.x] += ssum[threadIdx.x + s];
    __syncthreads();
  }
  const double log_sum = log(ssum[0]);
  for (int k = threadIdx.x; k < K; k += blockDim.x) q[k] = (float)exp((double)(z[k] - m) - log_sum);
  if (threadIdx.x == 0) losses[n] = log_sum - (double)(z[labels[n]] - m);
}

__global__ void softmax_xent_backward_kernel(float* dlogits, const float* probs,
                                             const int32_t* labels, int N, int K, float scale) {
  const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (idx >= (int64_t)N * K) return;
  const int n = (int)(idx / K), k = (int)(idx % K);
  dlogits[idx] = (probs[idx] - (k == labels[n] ? 1.0f : 0.0f)) * scale;
}

}  // namespace

void softmax_xent_forward(float* probs, double* losses, const float* logits,
                          const int32_t* labels, int N, int K, cudaStream_t stream) {
  CUDA_ASSERT(N > 0 && K > 0);
  softmax_xent_forward_kernel<<<N, kThreads, 0, stream>>>(probs, losses, logits, labels, K);
  LAUNCH_CHECK("softmax_xent_forward_kernel");
}

void softmax_xent_backward(float* dlogits, const float* probs, const int32_t* labels, int N, int K,
                           float scale, cudaStream_t stream) {
  CUDA_ASSERT(N > 0 && K > 0);
  const int64_t n = (int64_t)N * K;
  softmax_xent_backward_kernel<<<blocks_for(n), 256, 0, stream>>>(dlogits, probs, labels, N, K, scale);
  LAUNCH_CHECK("softmax_xent_backward_kernel");
}

}  // namespace cuda
}  // namespace alexnet
