// Grouped convolution as im2col + OpenBLAS SGEMM, batched over chunks of images so each
// GEMM is large enough to run both cores at full speed (a per-image GEMM on conv3-5 has
// only 169 columns). Per chunk and group:
//   col   (C/G*K*K, nb*OH*OW)  = im2col(inp[n0:n0+nb], group g)
//   stage (O/G, nb*OH*OW)      = weight_g (O/G, C/G*K*K) @ col        -> scattered to NCHW
// Backward: stage = gather(dout); dweight_g += stage @ col^T; dcol = weight_g^T @ stage;
// dinp = col2im(dcol). Chunks are visited in order, so sums are deterministic.
#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "layers.h"

namespace alexnet {
namespace {

// Images per chunk: keep the column buffer near 4M floats (16 MB).
int chunk_images(int N, int64_t col_per_image) {
  const int64_t target = 4 << 20;
  return (int)std::max<int64_t>(1, std::min<int64_t>(N, target / std::max<int64_t>(1, col_per_image)));
}

// The output columns [lo, hi) whose input column ow*S-P+kw lies inside 0..W-1: every
// other column of tap kw reads padding. (Floor division by hand: C++ rounds toward zero.)
struct TapRange { int lo, hi; };
inline TapRange tap_range(int kw, int S, int P, int W, int OW) {
  const int lo = std::min(OW, std::max(0, (P - kw + S - 1) / S));
  const int last = W - 1 + P - kw;  // the largest ow*S allowed
  const int hi = last < 0 ? lo : std::max(lo, std::min(OW, last / S + 1));
  return {lo, hi};
}

// col[(c*K + kh)*K + kw][b*OH*OW + oh*OW + ow] = inp[n0+b][c0+c][oh*S-P+kh][ow*S-P+kw] (0 outside)
void im2col(float* col, const float* inp, int n0, int nb, int C, int H, int W, int c0, int Cg,
            int K, int S, int P, int OH, int OW) {
  const int64_t ohw = (int64_t)OH * OW, cols = nb * ohw;
  const int rows = Cg * K * K;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) {
    const int c = r / (K * K), kh = (r / K) % K, kw = r % K;
    const TapRange t = tap_range(kw, S, P, W, OW);
    float* dst = col + (int64_t)r * cols;
    for (int b = 0; b < nb; b++) {
      const float* plane = inp + ((int64_t)(n0 + b) * C + c0 + c) * H * W;
      for (int oh = 0; oh < OH; oh++) {
        const int ih = oh * S - P + kh;
        float* d = dst + b * ohw + (int64_t)oh * OW;
        if (ih < 0 || ih >= H) {
          std::memset(d, 0, sizeof(float) * OW);
          continue;
        }
        const float* src = plane + (int64_t)ih * W;
        const int off = kw - P;  // column ow reads src[ow*S + off]
        for (int ow = 0; ow < t.lo; ow++) d[ow] = 0.0f;
        if (S == 1) {
          if (t.hi > t.lo) std::memcpy(d + t.lo, src + t.lo + off, sizeof(float) * (t.hi - t.lo));
        } else {
          for (int ow = t.lo; ow < t.hi; ow++) d[ow] = src[ow * S + off];
        }
        for (int ow = t.hi; ow < OW; ow++) d[ow] = 0.0f;
      }
    }
  }
}

// The adjoint of im2col: dinp[n0+b][c0+c] += every column entry that read it. One thread
// per input channel, so no two threads write the same element.
void col2im(float* dinp, const float* col, int n0, int nb, int C, int H, int W, int c0, int Cg,
            int K, int S, int P, int OH, int OW) {
  const int64_t ohw = (int64_t)OH * OW, cols = nb * ohw;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < Cg; c++) {
    for (int b = 0; b < nb; b++) {
      float* plane = dinp + ((int64_t)(n0 + b) * C + c0 + c) * H * W;
      for (int kh = 0; kh < K; kh++)
        for (int kw = 0; kw < K; kw++) {
          const float* src = col + (int64_t)((c * K + kh) * K + kw) * cols + b * ohw;
          const TapRange t = tap_range(kw, S, P, W, OW);
          for (int oh = 0; oh < OH; oh++) {
            const int ih = oh * S - P + kh;
            if (ih < 0 || ih >= H) continue;
            float* drow = plane + (int64_t)ih * W;
            const int off = kw - P;  // column ow read drow[ow*S + off]
            const float* s = src + (int64_t)oh * OW;
            if (S == 1) {
              for (int ow = t.lo; ow < t.hi; ow++) drow[ow + off] += s[ow];
            } else {
              for (int ow = t.lo; ow < t.hi; ow++) drow[ow * S + off] += s[ow];
            }
          }
        }
    }
  }
}

// Output size, per-group sizes and the chunking, shared by forward and backward; sizes
// the scratch buffers for one chunk.
struct ConvPlan {
  int OH, OW, Cg, Og, rows, nbmax;
  int64_t ohw;
  ConvPlan(int N, int C, int H, int W, int O, int K, int S, int P, int G, Scratch& scratch)
      : OH(conv_out_size(H, K, S, P)), OW(conv_out_size(W, K, S, P)), Cg(C / G), Og(O / G),
        rows(Cg * K * K), nbmax(0), ohw((int64_t)OH * OW) {
    nbmax = chunk_images(N, rows * ohw);
    scratch.col.resize((size_t)rows * nbmax * ohw);
    scratch.stage.resize((size_t)Og * nbmax * ohw);
  }
};

}  // namespace

void conv_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                  int C, int H, int W, int O, int K, int S, int P, int G, Scratch& scratch) {
  const ConvPlan plan(N, C, H, W, O, K, S, P, G, scratch);
  const int OH = plan.OH, OW = plan.OW, Cg = plan.Cg, Og = plan.Og, rows = plan.rows, nbmax = plan.nbmax;
  const int64_t ohw = plan.ohw;
  for (int n0 = 0; n0 < N; n0 += nbmax) {
    const int nb = std::min(nbmax, N - n0);
    const int64_t cols = nb * ohw;
    for (int g = 0; g < G; g++) {
      im2col(scratch.col.data(), inp, n0, nb, C, H, W, g * Cg, Cg, K, S, P, OH, OW);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Og, (int)cols, rows, 1.0f,
                  weight + (int64_t)g * Og * rows, rows, scratch.col.data(), (int)cols, 0.0f,
                  scratch.stage.data(), (int)cols);
      const float* stage = scratch.stage.data();
#pragma omp parallel for collapse(2) schedule(static)
      for (int b = 0; b < nb; b++)
        for (int o = 0; o < Og; o++) {
          const float bo = bias[g * Og + o];
          const float* s = stage + (int64_t)o * cols + b * ohw;
          float* d = out + ((int64_t)(n0 + b) * O + g * Og + o) * ohw;
          for (int64_t p = 0; p < ohw; p++) d[p] = s[p] + bo;
        }
    }
  }
}

void conv_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                   const float* weight, int N, int C, int H, int W, int O, int K, int S, int P,
                   int G, Scratch& scratch) {
  const ConvPlan plan(N, C, H, W, O, K, S, P, G, scratch);
  const int OH = plan.OH, OW = plan.OW, Cg = plan.Cg, Og = plan.Og, rows = plan.rows, nbmax = plan.nbmax;
  const int64_t ohw = plan.ohw;
  if (dinp) {
    scratch.dcol.resize(scratch.col.size());
    std::memset(dinp, 0, sizeof(float) * (size_t)N * C * H * W);
  }
  std::memset(dbias, 0, sizeof(float) * O);
  for (int n0 = 0; n0 < N; n0 += nbmax) {
    const int nb = std::min(nbmax, N - n0);
    const int64_t cols = nb * ohw;
    for (int g = 0; g < G; g++) {
      float* stage = scratch.stage.data();
#pragma omp parallel for schedule(static)
      for (int o = 0; o < Og; o++) {
        double sum = 0.0;  // the bias gradient, per chunk in a fixed order
        for (int b = 0; b < nb; b++) {
          const float* s = dout + ((int64_t)(n0 + b) * O + g * Og + o) * ohw;
          float* d = stage + (int64_t)o * cols + b * ohw;
          for (int64_t p = 0; p < ohw; p++) {
            d[p] = s[p];
            sum += s[p];
          }
        }
        dbias[g * Og + o] += (float)sum;
      }
      im2col(scratch.col.data(), inp, n0, nb, C, H, W, g * Cg, Cg, K, S, P, OH, OW);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Og, rows, (int)cols, 1.0f, stage,
                  (int)cols, scratch.col.data(), (int)cols, n0 == 0 ? 0.0f : 1.0f,
                  dweight + (int64_t)g * Og * rows, rows);
      if (dinp) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, (int)cols, Og, 1.0f,
                    weight + (int64_t)g * Og * rows, rows, stage, (int)cols, 0.0f,
                    scratch.dcol.data(), (int)cols);
        col2im(dinp, scratch.dcol.data(), n0, nb, C, H, W, g * Cg, Cg, K, S, P, OH, OW);
      }
    }
  }
}

}  // namespace alexnet
