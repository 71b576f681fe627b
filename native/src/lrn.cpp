// Local response normalization across channels, the paper's formula (see layers.h).
// Forward keeps s_i = k + alpha * sum a_j^2 for the backward:
//   dinp_i = dout_i * s_i^-beta - 2*alpha*beta * a_i * sum_{j in window(i)} dout_j * b_j / s_j
// (the window relation is symmetric, so the sum runs over i's own window).
#include <algorithm>
#include <cmath>
#include <vector>

#include "layers.h"

namespace alexnet {
namespace {

// s^-beta; beta = 0.75 (the paper's) takes a path of square roots that vectorizes.
inline float pow_neg_beta(float s, float beta) {
  if (beta == 0.75f) {
    const float r = std::sqrt(s);
    return 1.0f / (r * std::sqrt(r));
  }
  return std::pow(s, -beta);
}

// The window of channel c within its block of Cb channels: [lo, hi].
inline void lrn_window(int c, int Cb, int half, int& lo, int& hi) {
  const int block0 = (c / Cb) * Cb;
  lo = std::max(block0, c - half);
  hi = std::min(block0 + Cb - 1, c + half);
}

}  // namespace

void lrn_forward(float* out, float* scale, const float* inp, int N, int C, int H, int W, int G,
                 int size, float alpha, float beta, float k) {
  const int Cb = C / G, half = size / 2;
  const int64_t hw = (int64_t)H * W;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      int lo, hi;
      lrn_window(c, Cb, half, lo, hi);
      float* s = scale + ((int64_t)n * C + c) * hw;
      for (int64_t p = 0; p < hw; p++) s[p] = 0.0f;
      for (int j = lo; j <= hi; j++) {
        const float* a = inp + ((int64_t)n * C + j) * hw;
        for (int64_t p = 0; p < hw; p++) s[p] += a[p] * a[p];
      }
      const float* a = inp + ((int64_t)n * C + c) * hw;
      float* b = out + ((int64_t)n * C + c) * hw;
      for (int64_t p = 0; p < hw; p++) {
        s[p] = k + alpha * s[p];
        b[p] = a[p] * pow_neg_beta(s[p], beta);
      }
    }
}

void lrn_backward(float* dinp, const float* dout, const float* inp, const float* out,
                  const float* scale, int N, int C, int H, int W, int G, int size, float alpha,
                  float beta) {
  const int Cb = C / G, half = size / 2;
  const int64_t hw = (int64_t)H * W;
  const float coef = 2.0f * alpha * beta;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      int lo, hi;
      lrn_window(c, Cb, half, lo, hi);
      const int64_t base = ((int64_t)n * C + c) * hw;
      float* d = dinp + base;
      for (int64_t p = 0; p < hw; p++) d[p] = 0.0f;
      for (int j = lo; j <= hi; j++) {
        const int64_t bj = ((int64_t)n * C + j) * hw;
        for (int64_t p = 0; p < hw; p++) d[p] += dout[bj + p] * out[bj + p] / scale[bj + p];
      }
      for (int64_t p = 0; p < hw; p++)
        d[p] = dout[base + p] * pow_neg_beta(scale[base + p], beta) - coef * inp[base + p] * d[p];
    }
}

}  // namespace alexnet
