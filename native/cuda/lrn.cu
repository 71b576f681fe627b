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
struct LrnSite {
  int64_t n, p;
  int lo, hi;
};
__device__ __forceinline__ LrnSite lrn_site(int64_t idx, int Cc, int c0, int Cb, int64_t hw, int half) {
  LrnSite s;
  s.p = idx % hw;
  s.n = idx / (hw * Cc);
  const int cg = c0 + (int)((idx / hw) % Cc);
  const int block0 = (cg / Cb) * Cb;
  s.lo = max(block0, cg - half) - c0;
  s.hi = min(block0 + Cb - 1, cg + half) - c0;
  return s;
}

__global__ void lrn_forward_kernel(float* out, float* scale, const float* inp, int N, int Cc, int c0,
                                   int Cb, int64_t hw, int half, float alpha, float beta, float k) {
  const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (idx >= (int64_t)N * Cc * hw) return;
  const LrnSite w = lrn_site(idx, Cc, c0, Cb, hw, half);
  float s = 0.0f;
  for (int j = w.lo; j <= w.hi; j++) {
    const float a = inp[(w.n * Cc + j) * hw + w.p];
    s += a * a;
  }
  s = k + alpha * s;
  scale[idx] = s;
  out[idx] = inp[idx] * pow_neg_beta(s, beta);
}

__global__ void lrn_backward_kernel(float* dinp, const float* dout, const float* inp,
                                    const float* out, const float* scale, int N, int Cc, int c0,
                                    int Cb, int64_t hw, int half, float beta, float coef) {
  const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (idx >= (int64_t)N * Cc * hw) return;
  const LrnSite w = lrn_site(idx, Cc, c0, Cb, hw, half);
  float d = 0.0f;
  for (int j = w.lo; j <= w.hi; j++) {
    const int64_t bj = (w.n * Cc + j) * hw + w.p;
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
  lrn_forward_kernel<<<blocks_for(n), 256, 0, stream>>>(out, scale, inp, N, Cc, c0, C / G, hw,
                                                        size / 2, alpha, beta, k);
  LAUNCH_CHECK("lrn_forward_kernel");
}

void lrn_backward(float* dinp, const float* dout, const float* inp, const float* out,
                  const float* scale, int N, int Cc, int c0, int C, int H, int W, int G, int size,
                  float alpha, float beta, cudaStream_t stream) {
  check(N, Cc, c0, C, G, size);
  const int64_t hw = (int64_t)H * W, n = (int64_t)N * Cc * hw;
  lrn_backward_kernel<<<blocks_for(n), 256, 0, stream>>>(dinp, dout, inp, out, scale, N, Cc, c0,
                                                         C / G, hw, size / 2, beta,
                                                         2.0f * alpha * beta);
  LAUNCH_CHECK("lrn_backward_kernel");
}

}  // namespace cuda
}  // namespace alexnet
