// Fully connected layer through OpenBLAS SGEMM (PyTorch's [out, in] weight layout); small
// batches forward by streaming the weights once.

#include <algorithm>

#include "gemm.h"
#include "layers.h"

namespace alexnet {

namespace {

// Batches up to this size take the weight-streaming way below: OpenBLAS's SGEMM packs the
// whole weight matrix whatever N is (fc6 of the paper: 151 MB), 15 ms for one image on 2
// cores where reading it once takes 5.
constexpr int kStreamingBatch = 16;

// out (N,O) = bias + inp (N,I) @ weight^T for small N, each weight row read once: a thread
// takes whole rows, and each row is dotted with every input in blocks that stay in cache,
// 16 float lanes per input (a fixed order: the same bits whatever the thread count).
void linear_forward_streaming(float* out, const float* inp, const float* weight, const float* bias,
                              int N, int I, int O) {
  constexpr int L = 16, kBlock = 2048;
#pragma omp parallel for schedule(static)
  for (int o = 0; o < O; o++) {
    const float* w = weight + (int64_t)o * I;
    float lanes[kStreamingBatch][L] = {};
    float tail[kStreamingBatch] = {};
    const int full = I / L * L;
    for (int i0 = 0; i0 < full; i0 += kBlock) {
      const int i1 = std::min(full, i0 + kBlock);
      for (int n = 0; n < N; n++) {
        const float* x = inp + (int64_t)n * I;
        for (int i = i0; i < i1; i += L)
          for (int j = 0; j < L; j++) lanes[n][j] += w[i + j] * x[i + j];
      }
    }
    for (int n = 0; n < N; n++) {
      const float* x = inp + (int64_t)n * I;
      for (int i = full; i < I; i++) tail[n] += w[i] * x[i];
      double sum = 0.0;
      for (int j = 0; j < L; j++) sum += lanes[n][j];
      out[(int64_t)n * O + o] = bias[o] + (float)(sum + tail[n]);
    }
  }
}

}  // namespace

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int I, int O, Precision precision) {
  if (N <= kStreamingBatch) return linear_forward_streaming(out, inp, weight, bias, N, I, O);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int o = 0; o < O; o++) out[(int64_t)n * O + o] = bias[o];
  // out (N,O) += inp (N,I) @ weight^T (I,O)
  gemm(precision, false, true, N, O, I, 1.0f, inp, I, weight, I, 1.0f, out,
              O);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int I, int O,
                     Precision precision) {
  // dweight (O,I) = dout^T (O,N) @ inp (N,I)
  gemm(precision, true, false, O, I, N, 1.0f, dout, O, inp, I, 0.0f,
              dweight, I);
  // dinp (N,I) = dout (N,O) @ weight (O,I)
  if (dinp)
    gemm(precision, false, false, N, I, O, 1.0f, dout, O, weight, I, 0.0f,
                dinp, I);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < O; o++) {
    double sum = 0.0;
    for (int n = 0; n < N; n++) sum += dout[(int64_t)n * O + o];
    dbias[o] = (float)sum;
  }
}

}  // namespace alexnet
