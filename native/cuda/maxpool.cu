// Max pooling without padding, floor output size (the paper's overlapping 3x3 stride 2).
// Forward: one thread per output, first maximum wins, a NaN wins and propagates (as
// maxpool.cpp). Backward: one thread per input element gathers the gradients of the
// outputs whose argmax it is, in output order, so overlapping windows sum as the CPU's.
#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

// I: the index type, int where the tensor has under 2^31 elements (32-bit division is
// several times cheaper than 64-bit), else int64_t.
template <typename I>
__global__ void maxpool_forward_kernel(float* out, int32_t* argmax, const float* inp, I planes,
                                       int H, int W, int K, int S, int OH, int OW) {
  const I idx = blockIdx.x * (I)blockDim.x + threadIdx.x;
  if (idx >= planes * OH * OW) return;
  const I plane = idx / ((I)OH * OW);
  const int q = (int)(idx - plane * OH * OW), oh = q / OW, ow = q - oh * OW;
  const float* a = inp + (int64_t)plane * H * W;
  int best = oh * S * W + ow * S;
  float m = a[best];
  for (int kh = 0; kh < K; kh++)
    for (int kw = 0; kw < K; kw++) {
      const int i = (oh * S + kh) * W + ow * S + kw;
      const float v = a[i];
      if (v > m || (v != v && m == m)) {
        m = v;
        best = i;
      }
    }
  out[idx] = m;
  argmax[idx] = best;
}

template <typename I>
__global__ void maxpool_backward_kernel(float* dinp, const float* dout, const int32_t* argmax,
                                        I planes, int H, int W, int K, int S, int OH, int OW) {
  const I idx = blockIdx.x * (I)blockDim.x + threadIdx.x;
  if (idx >= planes * H * W) return;
  const I plane = idx / ((I)H * W);
  const int i = (int)(idx - plane * H * W), ih = i / W, iw = i - ih * W;
  // Outputs whose window covers (ih, iw): oh*S <= ih <= oh*S + K - 1.
  const int oh_lo = ih >= K ? (ih - K) / S + 1 : 0, oh_hi = min(OH - 1, ih / S);
  const int ow_lo = iw >= K ? (iw - K) / S + 1 : 0, ow_hi = min(OW - 1, iw / S);
  const float* g = dout + (int64_t)plane * OH * OW;
  const int32_t* am = argmax + (int64_t)plane * OH * OW;
  float sum = 0.0f;
  for (int oh = oh_lo; oh <= oh_hi; oh++)
    for (int ow = ow_lo; ow <= ow_hi; ow++)
      if (am[oh * OW + ow] == i) sum += g[oh * OW + ow];
  dinp[idx] = sum;
}

}  // namespace

void maxpool_forward(float* out, int32_t* argmax, const float* inp, int N, int C, int H, int W,
                     int K, int S, cudaStream_t stream) {
  CUDA_ASSERT(N > 0 && C > 0 && K > 0 && S > 0 && H >= K && W >= K);
  const int OH = (H - K) / S + 1, OW = (W - K) / S + 1;
  const int64_t planes = (int64_t)N * C, n = planes * OH * OW;
  const int64_t in = planes * H * W;  // the input's elements bound every index used
  if (in < INT32_MAX && n < INT32_MAX)
    maxpool_forward_kernel<int><<<blocks_for(n), 256, 0, stream>>>(out, argmax, inp, (int)planes, H, W, K, S, OH, OW);
  else
    maxpool_forward_kernel<int64_t><<<blocks_for(n), 256, 0, stream>>>(out, argmax, inp, planes, H, W, K, S, OH, OW);
  LAUNCH_CHECK("maxpool_forward_kernel");
}

void maxpool_backward(float* dinp, const float* dout, const int32_t* argmax, int N, int C, int H,
                      int W, int K, int S, cudaStream_t stream) {
  CUDA_ASSERT(N > 0 && C > 0 && K > 0 && S > 0 && H >= K && W >= K);
  const int OH = (H - K) / S + 1, OW = (W - K) / S + 1;
  const int64_t planes = (int64_t)N * C, n = planes * H * W;
  if (n < INT32_MAX)
    maxpool_backward_kernel<int><<<blocks_for(n), 256, 0, stream>>>(dinp, dout, argmax, (int)planes, H, W, K, S, OH, OW);
  else
    maxpool_backward_kernel<int64_t><<<blocks_for(n), 256, 0, stream>>>(dinp, dout, argmax, planes, H, W, K, S, OH, OW);
  LAUNCH_CHECK("maxpool_backward_kernel");
}

}  // namespace cuda
}  // namespace alexnet
