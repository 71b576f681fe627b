// The paper's update as one fused kernel (sgd.cpp): v <- m*v - wd*lr*w - lr*g; w <- w + v.
#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

__global__ void sgd_update_kernel(float* w, float* v, const float* grad, int64_t n, float lr,
                                  float momentum, float decay) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float vi = momentum * v[i] - decay * w[i] - lr * grad[i];
  v[i] = vi;
  w[i] += vi;
}

}  // namespace

void sgd_update(float* w, float* v, const float* grad, int64_t n, float lr, float momentum,
                float weight_decay, cudaStream_t stream) {
  CUDA_ASSERT(n > 0);
  sgd_update_kernel<<<blocks_for(n), 256, 0, stream>>>(w, v, grad, n, lr, momentum, weight_decay * lr);
  LAUNCH_CHECK("sgd_update_kernel");
}

}  // namespace cuda
}  // namespace alexnet
