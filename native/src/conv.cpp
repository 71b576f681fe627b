// Grouped convolution as im2col + OpenBLAS SGEMM, two ways:
//
// Per image (batches of at least as many images as threads; training and batch
// inference): each thread takes whole images, and for each image and group builds the
// column matrix in its own buffer, which stays in its core's cache, then calls a
// single-threaded SGEMM (OpenBLAS runs single-threaded inside a parallel region) that
// writes the NCHW output directly:
//   col (C/G*K*K, OH*OW) = im2col(inp[n], group g);  out[n, g] (O/G, OH*OW) = weight_g @ col + bias
// Backward: dweight_g += dout[n, g] @ col^T; dcol = weight_g^T @ dout[n, g]; dinp[n] = col2im(dcol).
// The weight gradient is summed over a fixed number of slots (contiguous runs of images),
// each slot's images in order, then the slots in order: the same bits whatever the thread
// count. Per image the work is cache-sized and both cores run their own SGEMMs: on 2
// cores the SGEMMs of alexnet-32's conv2 run at about 84 GFLOP/s per core against about
// 100 for the two cores sharing one large SGEMM, and no pass over a staging buffer.
//
// Chunked (batches smaller than the thread count, e.g. serving one image on many cores):
// im2col over a chunk of images, one multi-threaded SGEMM per chunk and group:
//   col   (C/G*K*K, nb*OH*OW)  = im2col(inp[n0:n0+nb], group g)
//   stage (O/G, nb*OH*OW)      = weight_g (O/G, C/G*K*K) @ col        -> scattered to NCHW
// Backward: stage = gather(dout); dweight_g += stage @ col^T; dcol = weight_g^T @ stage;
// dinp = col2im(dcol). Chunks are visited in order, so sums are deterministic.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "grad_slots.h"
#include "gemm.h"
#include "layers.h"
#include "winograd.h"

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

// One row of the column matrix, tap (kh, kw) of one input plane:
// dst[oh*OW + ow] = plane[oh*S-P+kh][ow*S-P+kw] (0 outside).
inline void im2col_row(float* dst, const float* plane, int H, int W, int kh, int kw, int S, int P,
                       int OH, int OW) {
  const TapRange t = tap_range(kw, S, P, W, OW);
  const int off = kw - P;  // column ow reads src[ow*S + off]
  for (int oh = 0; oh < OH; oh++) {
    const int ih = oh * S - P + kh;
    float* d = dst + (int64_t)oh * OW;
    if (ih < 0 || ih >= H) {
      std::memset(d, 0, sizeof(float) * OW);
      continue;
    }
    const float* src = plane + (int64_t)ih * W;
    for (int ow = 0; ow < t.lo; ow++) d[ow] = 0.0f;
    if (S == 1) {
      if (t.hi > t.lo) std::memcpy(d + t.lo, src + t.lo + off, sizeof(float) * (t.hi - t.lo));
    } else {
      for (int ow = t.lo; ow < t.hi; ow++) d[ow] = src[ow * S + off];
    }
    for (int ow = t.hi; ow < OW; ow++) d[ow] = 0.0f;
  }
}

// The adjoint of im2col_row: plane[oh*S-P+kh][ow*S-P+kw] += src[oh*OW + ow] inside the plane.
inline void col2im_row(float* plane, const float* src, int H, int W, int kh, int kw, int S, int P,
                       int OH, int OW) {
  const TapRange t = tap_range(kw, S, P, W, OW);
  const int off = kw - P;  // column ow read drow[ow*S + off]
  for (int oh = 0; oh < OH; oh++) {
    const int ih = oh * S - P + kh;
    if (ih < 0 || ih >= H) continue;
    float* drow = plane + (int64_t)ih * W;
    const float* s = src + (int64_t)oh * OW;
    if (S == 1) {
      for (int ow = t.lo; ow < t.hi; ow++) drow[ow + off] += s[ow];
    } else {
      for (int ow = t.lo; ow < t.hi; ow++) drow[ow * S + off] += s[ow];
    }
  }
}

// col[(c*K + kh)*K + kw][b*OH*OW + oh*OW + ow] = inp[n0+b][c0+c][oh*S-P+kh][ow*S-P+kw] (0 outside)
void im2col(float* col, const float* inp, int n0, int nb, int C, int H, int W, int c0, int Cg,
            int K, int S, int P, int OH, int OW) {
  const int64_t ohw = (int64_t)OH * OW, cols = nb * ohw;
  const int rows = Cg * K * K;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) {
    const int c = r / (K * K), kh = (r / K) % K, kw = r % K;
    for (int b = 0; b < nb; b++)
      im2col_row(col + (int64_t)r * cols + b * ohw, inp + ((int64_t)(n0 + b) * C + c0 + c) * H * W,
                 H, W, kh, kw, S, P, OH, OW);
  }
}

// The adjoint of im2col: dinp[n0+b][c0+c] += every column entry that read it. One thread
// per input channel, so no two threads write the same element.
void col2im(float* dinp, const float* col, int n0, int nb, int C, int H, int W, int c0, int Cg,
            int K, int S, int P, int OH, int OW) {
  const int64_t ohw = (int64_t)OH * OW, cols = nb * ohw;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < Cg; c++)
    for (int b = 0; b < nb; b++) {
      float* plane = dinp + ((int64_t)(n0 + b) * C + c0 + c) * H * W;
      for (int kh = 0; kh < K; kh++)
        for (int kw = 0; kw < K; kw++)
          col2im_row(plane, col + (int64_t)((c * K + kh) * K + kw) * cols + b * ohw, H, W, kh, kw,
                     S, P, OH, OW);
    }
}

// One image's group: col (Cg*K*K, OH*OW) from Cg consecutive planes, on the calling thread.
void im2col_image(float* col, const float* planes, int Cg, int H, int W, int K, int S, int P,
                  int OH, int OW) {
  const int64_t ohw = (int64_t)OH * OW;
  for (int r = 0; r < Cg * K * K; r++)
    im2col_row(col + r * ohw, planes + (int64_t)(r / (K * K)) * H * W, H, W, (r / K) % K, r % K,
               S, P, OH, OW);
}

// Its adjoint: planes += col2im(col), on the calling thread.
void col2im_image(float* planes, const float* col, int Cg, int H, int W, int K, int S, int P,
                  int OH, int OW) {
  const int64_t ohw = (int64_t)OH * OW;
  for (int r = 0; r < Cg * K * K; r++)
    col2im_row(planes + (int64_t)(r / (K * K)) * H * W, col + r * ohw, H, W, (r / K) % K, r % K,
               S, P, OH, OW);
}

// The per-image way when every thread gets at least one image.
inline bool per_image(int N) { return N >= omp_get_max_threads(); }

// Output size, per-group sizes and the chunking, shared by both ways.
struct ConvPlan {
  int OH, OW, Cg, Og, rows, nbmax;
  int64_t ohw;
  ConvPlan(int N, int C, int H, int W, int O, int K, int S, int P, int G)
      : OH(conv_out_size(H, K, S, P)), OW(conv_out_size(W, K, S, P)), Cg(C / G), Og(O / G),
        rows(Cg * K * K), nbmax(chunk_images(N, (int64_t)Cg * K * K * OH * OW)),
        ohw((int64_t)OH * OW) {}
  // The chunked way's buffers: one chunk's columns and staged outputs.
  void size_chunked(Scratch& scratch) const {
    scratch.col.resize((size_t)rows * nbmax * ohw);
    scratch.stage.resize((size_t)Og * nbmax * ohw);
  }
};

void conv_forward_per_image(float* out, const float* inp, const float* weight, const float* bias,
                            int N, int C, int H, int W, int O, int K, int S, int P, int G,
                            const ConvPlan& plan, Scratch& scratch) {
  const int OH = plan.OH, OW = plan.OW, Cg = plan.Cg, Og = plan.Og, rows = plan.rows;
  const int64_t ohw = plan.ohw, col_size = (int64_t)rows * ohw;
  scratch.col.resize((size_t)omp_get_max_threads() * col_size);
#pragma omp parallel
  {
    float* col = scratch.col.data() + omp_get_thread_num() * col_size;
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++)
      for (int g = 0; g < G; g++) {
        im2col_image(col, inp + ((int64_t)n * C + g * Cg) * H * W, Cg, H, W, K, S, P, OH, OW);
        float* y = out + ((int64_t)n * O + g * Og) * ohw;
        gemm(scratch.precision, false, false, Og, (int)ohw, rows, 1.0f,
                    weight + (int64_t)g * Og * rows, rows, col, (int)ohw, 0.0f, y, (int)ohw);
        for (int o = 0; o < Og; o++) {
          const float bo = bias[g * Og + o];
          float* d = y + o * ohw;
          for (int64_t p = 0; p < ohw; p++) d[p] += bo;
        }
      }
  }
}

void conv_backward_per_image(float* dinp, float* dweight, float* dbias, const float* dout,
                             const float* inp, const float* weight, int N, int C, int H, int W,
                             int O, int K, int S, int P, int G, const ConvPlan& plan,
                             Scratch& scratch) {
  const int OH = plan.OH, OW = plan.OW, Cg = plan.Cg, Og = plan.Og, rows = plan.rows;
  const int64_t ohw = plan.ohw, col_size = (int64_t)rows * ohw, wsize = (int64_t)O * rows;
  const int threads = omp_get_max_threads(), slots = grad_slots(N);
  scratch.col.resize((size_t)threads * col_size);
  if (dinp) scratch.dcol.resize((size_t)threads * col_size);
  size_grad_slots(scratch, slots, wsize, O);
#pragma omp parallel
  {
    float* col = scratch.col.data() + omp_get_thread_num() * col_size;
    float* dcol = dinp ? scratch.dcol.data() + omp_get_thread_num() * col_size : nullptr;
    // A slot's sums do not depend on which thread runs it.
#pragma omp for schedule(dynamic, 1)
    for (int slot = 0; slot < slots; slot++) {
      float* dw = scratch.grad_slots.data() + slot * wsize;
      double* db = scratch.bias_slots.data() + (int64_t)slot * O;
      const int n0 = slot_first(slot, slots, N), n1 = slot_first(slot + 1, slots, N);
      for (int n = n0; n < n1; n++)
        for (int g = 0; g < G; g++) {
          const float* dy = dout + ((int64_t)n * O + g * Og) * ohw;
          for (int o = 0; o < Og; o++) db[g * Og + o] += sum_in_lanes(dy + o * ohw, ohw);
          const float* x = inp + ((int64_t)n * C + g * Cg) * H * W;
          im2col_image(col, x, Cg, H, W, K, S, P, OH, OW);
          gemm(scratch.precision, false, true, Og, rows, (int)ohw, 1.0f, dy,
                      (int)ohw, col, (int)ohw, n == n0 ? 0.0f : 1.0f, dw + (int64_t)g * Og * rows,
                      rows);
          if (dinp) {
            gemm(scratch.precision, true, false, rows, (int)ohw, Og, 1.0f,
                        weight + (int64_t)g * Og * rows, rows, dy, (int)ohw, 0.0f, dcol, (int)ohw);
            float* dx = dinp + ((int64_t)n * C + g * Cg) * H * W;
            std::memset(dx, 0, sizeof(float) * (size_t)Cg * H * W);
            col2im_image(dx, dcol, Cg, H, W, K, S, P, OH, OW);
          }
        }
    }
    add_grad_slots(dweight, dbias, scratch, slots, wsize, O);
  }
}

void conv_forward_chunked(float* out, const float* inp, const float* weight, const float* bias,
                          int N, int C, int H, int W, int O, int K, int S, int P, int G,
                          const ConvPlan& plan, Scratch& scratch) {
  plan.size_chunked(scratch);
  const int OH = plan.OH, OW = plan.OW, Cg = plan.Cg, Og = plan.Og, rows = plan.rows, nbmax = plan.nbmax;
  const int64_t ohw = plan.ohw;
  for (int n0 = 0; n0 < N; n0 += nbmax) {
    const int nb = std::min(nbmax, N - n0);
    const int64_t cols = nb * ohw;
    for (int g = 0; g < G; g++) {
      im2col(scratch.col.data(), inp, n0, nb, C, H, W, g * Cg, Cg, K, S, P, OH, OW);
      gemm(scratch.precision, false, false, Og, (int)cols, rows, 1.0f,
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

void conv_backward_chunked(float* dinp, float* dweight, float* dbias, const float* dout,
                           const float* inp, const float* weight, int N, int C, int H, int W,
                           int O, int K, int S, int P, int G, const ConvPlan& plan,
                           Scratch& scratch) {
  plan.size_chunked(scratch);
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
      gemm(scratch.precision, false, true, Og, rows, (int)cols, 1.0f, stage,
                  (int)cols, scratch.col.data(), (int)cols, n0 == 0 ? 0.0f : 1.0f,
                  dweight + (int64_t)g * Og * rows, rows);
      if (dinp) {
        gemm(scratch.precision, true, false, rows, (int)cols, Og, 1.0f,
                    weight + (int64_t)g * Og * rows, rows, stage, (int)cols, 0.0f,
                    scratch.dcol.data(), (int)cols);
        col2im(dinp, scratch.dcol.data(), n0, nb, C, H, W, g * Cg, Cg, K, S, P, OH, OW);
      }
    }
  }
}

}  // namespace

void conv_forward_im2col(float* out, const float* inp, const float* weight, const float* bias, int N,
                         int C, int H, int W, int O, int K, int S, int P, int G, Scratch& scratch) {
  const ConvPlan plan(N, C, H, W, O, K, S, P, G);
  (per_image(N) ? conv_forward_per_image : conv_forward_chunked)(out, inp, weight, bias, N, C, H,
                                                                 W, O, K, S, P, G, plan, scratch);
}

void conv_backward_im2col(float* dinp, float* dweight, float* dbias, const float* dout,
                          const float* inp, const float* weight, int N, int C, int H, int W, int O,
                          int K, int S, int P, int G, Scratch& scratch) {
  const ConvPlan plan(N, C, H, W, O, K, S, P, G);
  (per_image(N) ? conv_backward_per_image : conv_backward_chunked)(
      dinp, dweight, dbias, dout, inp, weight, N, C, H, W, O, K, S, P, G, plan, scratch);
}

void conv_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                  int C, int H, int W, int O, int K, int S, int P, int G, Scratch& scratch) {
  if (winograd_wins(N, C / G, H, W, O / G, K, S, P))
    return winograd_conv_forward(out, inp, weight, bias, N, C, H, W, O, P, G, scratch);
  conv_forward_im2col(out, inp, weight, bias, N, C, H, W, O, K, S, P, G, scratch);
}

void conv_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                   const float* weight, int N, int C, int H, int W, int O, int K, int S, int P,
                   int G, Scratch& scratch) {
  if (winograd_wins(N, C / G, H, W, O / G, K, S, P))
    return winograd_conv_backward(dinp, dweight, dbias, dout, inp, weight, N, C, H, W, O, P, G, scratch);
  conv_backward_im2col(dinp, dweight, dbias, dout, inp, weight, N, C, H, W, O, K, S, P, G, scratch);
}

}  // namespace alexnet
