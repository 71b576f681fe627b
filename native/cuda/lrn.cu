// Local response normalization, the paper's formula (alpha not divided by size), within
// each of G contiguous blocks of C/G channels, as lrn.cpp:
//   s_i = k + alpha * sum_{j in window(i) within i's block} a_j^2;   b_i = a_i * s_i^-beta
//   dinp_i = dout_i * s_i^-beta - 2*alpha*beta * a_i * sum_{j in window(i)} dout_j * b_j / s_j
// One thread per element; the window sums run in the CPU's channel order. A column holds
// whole blocks (channels [c0, c0+Cc)), so it normalizes without the other column.
#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

__device__ __forceinline__ float pow_neg_beta(float s, float beta) {
  if (beta == 0.75f) {  // the paper's beta: the CPU's square-root path
    const float r = sqrtf(s);
    return 1.0f / (r * sqrtf(r));
  }
  return powf(s, -beta);
}

// Where element idx of the column's (N, Cc, hw) slice sits: image n, position p, and the
// window of its channel (global c0 + c) within its block, as local channel indices.
template <typename I>
struct LrnSite {
  I n, p;
  int lo, hi;
};
template <typename I>
__device__ __forceinline__ LrnSite<I> lrn_site(I idx, int Cc, int c0, int Cb, I hw, int half) {
  LrnSite<I> s;
  s.p = idx % hw;
  s.n = idx / (hw * Cc);
  const int cg = c0 + (int)((idx / hw) % Cc);
  const int block0 = (cg / Cb) * Cb;
  s.lo = max(block0, cg - half) - c0;
  s.hi = min(block0 + Cb - 1, cg + half) - c0;
  return s;
}

// I: the index type, int where the tensor has under 2^31 elements (32-bit division is
// several times cheaper than 64-bit), else int64_t.
template <typename I>
__global__ void lrn_forward_kernel(float* out, float* scale, const float* inp, int N, int Cc, int c0,
                                   int Cb, I hw, int half, float alpha, float beta, float k) {
  const I idx = blockIdx.x * (I)blockDim.x + threadIdx.x;
  if (idx >= (I)N * Cc * hw) return;
  const LrnSite<I> w = lrn_site<I>(idx, Cc, c0, Cb, hw, half);
  float s = 0.0f;
  for (int j = w.lo; j <= w.hi; j++) {
    const float a = inp[(w.n * Cc + j) * hw + w.p];
    s += a * a;
  }
  s = k + alpha * s;
  scale[idx] = s;
  out[idx] = inp[idx] * pow_neg_beta(s, beta);
}

template <typename I>
__global__ void lrn_backward_kernel(float* dinp, const float* dout, const float* inp,
                                    const float* out, const float* scale, int N, int Cc, int c0,
                                    int Cb, I hw, int half, float beta, float coef) {
  const I idx = blockIdx.x * (I)blockDim.x + threadIdx.x;
  if (idx >= (I)N * Cc * hw) return;
  const LrnSite<I> w = lrn_site<I>(idx, Cc, c0, Cb, hw, half);
  float d = 0.0f;
  for (int j = w.lo; j <= w.hi; j++) {
    const I bj = (w.n * Cc + j) * hw + w.p;
    d += dout[bj] * out[bj] / scale[bj];
  }
  dinp[idx] = dout[idx] * pow_neg_beta(scale[idx], beta) - coef * inp[idx] * d;
}

void check(int N, int Cc, int c0, int C, int G, int size) {
  CUDA_ASSERT(N > 0 && Cc > 0 && G > 0 && C % G == 0 && size > 0);
  const int Cb = C / G;
  CUDA_ASSERT(c0 % Cb == 0 && Cc % Cb == 0 && c0 + Cc <= C);  // whole blocks only
}

}  // namespace

void lrn_forward(float* out, float* scale, const float* inp, int N, int Cc, int c0, int C, int H,
                 int W, int G, int size, float alpha, float beta, float k, cudaStream_t stream) {
  check(N, Cc, c0, C, G, size);
  const int64_t hw = (int64_t)H * W, n = (int64_t)N * Cc * hw;
  if (n < INT32_MAX)
    lrn_forward_kernel<int><<<blocks_for(n), 256, 0, stream>>>(out, scale, inp, N, Cc, c0, C / G, (int)hw,
                                                               size / 2, alpha, beta, k);
  else
    lrn_forward_kernel<int64_t><<<blocks_for(n), 256, 0, stream>>>(out, scale, inp, N, Cc, c0, C / G, hw,
                                                                   size / 2, alpha, beta, k);
  LAUNCH_CHECK("lrn_forward_kernel");
}

void lrn_backward(float* dinp, const float* dout, const float* inp, const float* out,
                  const float* scale, int N, int Cc, int c0, int C, int H, int W, int G, int size,
                  float alpha, float beta, cudaStream_t stream) {
  check(N, Cc, c0, C, G, size);
  const int64_t hw = (int64_t)H * W, n = (int64_t)N * Cc * hw;
  if (n < INT32_MAX)
    lrn_backward_kernel<int><<<blocks_for(n), 256, 0, stream>>>(dinp, dout, inp, out, scale, N, Cc, c0, C / G,
                                                                (int)hw, size / 2, beta, 2.0f * alpha * beta);
  else
    lrn_backward_kernel<int64_t><<<blocks_for(n), 256, 0, stream>>>(dinp, dout, inp, out, scale, N, Cc, c0,
                                                                    C / G, hw, size / 2, beta,
                                                                    2.0f * alpha * beta);
  LAUNCH_CHECK("lrn_backward_kernel");
}

}  // namespace cuda
}  // namespace alexnet
