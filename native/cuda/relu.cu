// ReLU, f(x) = max(0, x); NaN passes through (as relu.cpp). The backward reads the output.
#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

__global__ void relu_forward_kernel(float* out, const float* inp, int64_t n) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
}

__global__ void relu_backward_kernel(float* dinp, const float* dout, const float* out, int64_t n) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

}  // namespace

void relu_forward(float* out, const float* inp, int64_t n, cudaStream_t stream) {
  CUDA_ASSERT(n > 0);
  relu_forward_kernel<<<blocks_for(n), 256, 0, stream>>>(out, inp, n);
  LAUNCH_CHECK("relu_forward_kernel");
}

void relu_backward(float* dinp, const float* dout, const float* out, int64_t n, cudaStream_t stream) {
  CUDA_ASSERT(n > 0);
  relu_backward_kernel<<<blocks_for(n), 256, 0, stream>>>(dinp, dout, out, n);
  LAUNCH_CHECK("relu_backward_kernel");
}

}  // namespace cuda
}  // namespace alexnet
