// 3x3 stride-1 convolutions (conv3-5 of the paper; conv3-5 of alexnet-32) by Winograd's
// minimal filtering F(2x2, 3x3) (Lavin & Gray 2015): each 2x2 output tile of a channel pair
// costs 16 multiplies instead of 36. Per 4x4 input tile d and 3x3 filter g:
//   V = B^T d B,  U = G g G^T,  M = sum_c U[o,c] (.) V[c],  Y = A^T M A   (2x2 outputs)
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// The sum over channels is 16 GEMMs, one per position xi of the 4x4 tile:
//   M[xi] (O/G, T) = U[xi] (O/G, C/G) @ V[xi] (C/G, T)        T = tiles of a chunk of images
// Backward:
//   input gradient: the same convolution of dout (padded by 2-P) with the filters turned
//     180 degrees and their in/out channels swapped;
//   weight gradient: dU[xi] (O/G, C/G) = dM[xi] (O/G, T) @ V[xi]^T with dM = A dY A^T per
//     tile, then dweight = G^T dU G, summed over a fixed number of slots (contiguous runs of
//     images, each slot's images in order, then the slots in order) so the bits do not depend
//     on the thread count, as in conv.cpp.
// Threads take chunks of whole images and run single-threaded SGEMMs (OpenBLAS does inside
// a parallel region), as conv.cpp's per-image way, which it is used instead of.
#include "winograd.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "gemm.h"
#include "grad_slots.h"

namespace alexnet {
namespace {

constexpr int kXi = 16;  // positions of a 4x4 tile

// Columns per GEMM: enough images per chunk for about this many tiles.
constexpr int kTargetTiles = 256;

struct Tiling {
  int OH, OW, TH, TW, tiles;  // output size, tiles down and across, per image
  Tiling(int H, int W, int P)
      : OH(H + 2 * P - 2), OW(W + 2 * P - 2), TH((OH + 1) / 2), TW((OW + 1) / 2), tiles(TH * TW) {}
};

// U (16, Og, Cg) of one group, from weight rows (Og, Cg, 3, 3). flip: the backward's filters,
// U[xi][c][o] from rot180(weight[o][c]), an (Cg, Og) matrix per position.
void transform_filters(float* U, const float* weight, int Og, int Cg, bool flip) {
#pragma omp parallel for schedule(static)
  for (int o = 0; o < Og; o++)
    for (int c = 0; c < Cg; c++) {
      const float* w = weight + ((int64_t)o * Cg + c) * 9;
      float g[9];
      for (int i = 0; i < 9; i++) g[i] = flip ? w[8 - i] : w[i];
      float t[4][3];  // G g
      for (int j = 0; j < 3; j++) {
        t[0][j] = g[j];
        t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
      }
      const int64_t rows = flip ? Cg : Og, cols = flip ? Og : Cg;
      const int64_t at = flip ? (int64_t)c * cols + o : (int64_t)o * cols + c;
      for (int i = 0; i < 4; i++) {  // (G g) G^T
        const float u[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]),
                            0.5f * (t[i][0] - t[i][1] + t[i][2]), t[i][2]};
        for (int j = 0; j < 4; j++) U[(i * 4 + j) * rows * cols + at] = u[j];
      }
    }
}

// V (16, Cg, T) for images [n0, n0+nb) of `planes` (N, C, H, W) from channel c0: the tiles of
// each image in row-major order after the tiles of the images before it.
void transform_input(float* V, int64_t T, const float* planes, int n0, int nb, int C, int c0, int Cg,
                     int H, int W, int P, const Tiling& tl) {
  for (int b = 0; b < nb; b++)
    for (int c = 0; c < Cg; c++) {
      const float* x = planes + ((int64_t)(n0 + b) * C + c0 + c) * H * W;
      float* v = V + (int64_t)c * T + (int64_t)b * tl.tiles;
      for (int ty = 0; ty < tl.TH; ty++)
        for (int tx = 0; tx < tl.TW; tx++) {
          float d[4][4];
          const int y0 = 2 * ty - P, x0 = 2 * tx - P;
          if (y0 >= 0 && x0 >= 0 && y0 + 4 <= H && x0 + 4 <= W) {
            for (int i = 0; i < 4; i++)
              for (int j = 0; j < 4; j++) d[i][j] = x[(int64_t)(y0 + i) * W + x0 + j];
          } else {
            for (int i = 0; i < 4; i++)
              for (int j = 0; j < 4; j++) {
                const int yy = y0 + i, xx = x0 + j;
                d[i][j] = (yy >= 0 && yy < H && xx >= 0 && xx < W) ? x[(int64_t)yy * W + xx] : 0.0f;
              }
          }
          float t[4][4];  // B^T d
          for (int j = 0; j < 4; j++) {
            t[0][j] = d[0][j] - d[2][j];
            t[1][j] = d[1][j] + d[2][j];
            t[2][j] = d[2][j] - d[1][j];
            t[3][j] = d[1][j] - d[3][j];
          }
          const int64_t at = ty * tl.TW + tx;
          for (int i = 0; i < 4; i++) {  // (B^T d) B
            const float r[4] = {t[i][0] - t[i][2], t[i][1] + t[i][2], t[i][2] - t[i][1], t[i][1] - t[i][3]};
            for (int j = 0; j < 4; j++) v[(int64_t)(i * 4 + j) * Cg * T + at] = r[j];
          }
        }
    }
}

// out (N, O, OH, OW) channels [o0, o0+Og) of images [n0, n0+nb) = A^T M A (+ bias).
void transform_output(float* out, const float* M, int64_t T, int n0, int nb, int O, int o0, int Og,
                      const float* bias, const Tiling& tl) {
  const int64_t ohw = (int64_t)tl.OH * tl.OW;
  for (int b = 0; b < nb; b++)
    for (int o = 0; o < Og; o++) {
      float* y = out + ((int64_t)(n0 + b) * O + o0 + o) * ohw;
      const float* m = M + (int64_t)o * T + (int64_t)b * tl.tiles;
      const float bo = bias ? bias[o0 + o] : 0.0f;
      for (int ty = 0; ty < tl.TH; ty++)
        for (int tx = 0; tx < tl.TW; tx++) {
          const int64_t at = ty * tl.TW + tx;
          float s[4][4];
          for (int xi = 0; xi < kXi; xi++) s[xi / 4][xi % 4] = m[(int64_t)xi * Og * T + at];
          float t[2][4];  // A^T M
          for (int j = 0; j < 4; j++) {
            t[0][j] = s[0][j] + s[1][j] + s[2][j];
            t[1][j] = s[1][j] - s[2][j] - s[3][j];
          }
          for (int i = 0; i < 2; i++) {  // (A^T M) A
            const int oy = 2 * ty + i;
            if (oy >= tl.OH) break;
            const float r0 = t[i][0] + t[i][1] + t[i][2], r1 = t[i][1] - t[i][2] - t[i][3];
            y[(int64_t)oy * tl.OW + 2 * tx] = r0 + bo;
            if (2 * tx + 1 < tl.OW) y[(int64_t)oy * tl.OW + 2 * tx + 1] = r1 + bo;
          }
        }
    }
}

// dM (16, Og, T) = A dY A^T per tile of dout (N, O, OH, OW), channels [o0, o0+Og).
void transform_output_grad(float* dM, int64_t T, const float* dout, int n0, int nb, int O, int o0,
                           int Og, const Tiling& tl) {
  const int64_t ohw = (int64_t)tl.OH * tl.OW;
  for (int b = 0; b < nb; b++)
    for (int o = 0; o < Og; o++) {
      const float* dy = dout + ((int64_t)(n0 + b) * O + o0 + o) * ohw;
      float* m = dM + (int64_t)o * T + (int64_t)b * tl.tiles;
      for (int ty = 0; ty < tl.TH; ty++)
        for (int tx = 0; tx < tl.TW; tx++) {
          float e[2][2];
          for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
              const int oy = 2 * ty + i, ox = 2 * tx + j;
              e[i][j] = (oy < tl.OH && ox < tl.OW) ? dy[(int64_t)oy * tl.OW + ox] : 0.0f;
            }
          float t[4][2];  // A e, A = (A^T)^T = [1 0; 1 1; 1 -1; 0 -1]
          for (int j = 0; j < 2; j++) {
            t[0][j] = e[0][j];
            t[1][j] = e[0][j] + e[1][j];
            t[2][j] = e[0][j] - e[1][j];
            t[3][j] = -e[1][j];
          }
          const int64_t at = ty * tl.TW + tx;
          for (int i = 0; i < 4; i++) {  // (A e) A^T
            const float r[4] = {t[i][0], t[i][0] + t[i][1], t[i][0] - t[i][1], -t[i][1]};
            for (int j = 0; j < 4; j++) m[(int64_t)(i * 4 + j) * Og * T + at] = r[j];
          }
        }
    }
}

// dweight rows (Og, Cg, 3, 3) (+)= G^T dU G from dU (16, Og, Cg).
void filter_grad(float* dweight, const float* dU, int Og, int Cg, bool accumulate) {
  const int64_t oc = (int64_t)Og * Cg;
  for (int64_t k = 0; k < oc; k++) {
    float u[4][4];
    for (int xi = 0; xi < kXi; xi++) u[xi / 4][xi % 4] = dU[xi * oc + k];
    float t[3][4];  // G^T u, G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]
    for (int j = 0; j < 4; j++) {
      t[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
      t[1][j] = 0.5f * (u[1][j] - u[2][j]);
      t[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
    }
    float* w = dweight + k * 9;
    for (int i = 0; i < 3; i++) {  // (G^T u) G
      const float r[3] = {t[i][0] + 0.5f * (t[i][1] + t[i][2]), 0.5f * (t[i][1] - t[i][2]),
                          0.5f * (t[i][1] + t[i][2]) + t[i][3]};
      for (int j = 0; j < 3; j++) w[i * 3 + j] = accumulate ? w[i * 3 + j] + r[j] : r[j];
    }
  }
}

// out (N, O, OH, OW) = the convolution of inp (N, C, H, W) with pre-transformed filters
// U (G, 16, O/G, C/G), pad P, plus bias (may be null). Threads take chunks of images.
void winograd_apply(float* out, const float* inp, const float* U, const float* bias, int N, int C,
                    int H, int W, int O, int P, int G, Scratch& scratch) {
  const Tiling tl(H, W, P);
  const int Cg = C / G, Og = O / G;
  const int per_chunk = std::max(1, std::min(kTargetTiles / tl.tiles, (N + omp_get_max_threads() - 1) / omp_get_max_threads()));
  const int chunks = (N + per_chunk - 1) / per_chunk;
  const int64_t T = (int64_t)per_chunk * tl.tiles, vsize = (int64_t)kXi * Cg * T, msize = (int64_t)kXi * Og * T;
  scratch.col.resize((size_t)omp_get_max_threads() * (vsize + msize));
#pragma omp parallel
  {
    float* V = scratch.col.data() + omp_get_thread_num() * (vsize + msize);
    float* M = V + vsize;
#pragma omp for schedule(static)
    for (int chunk = 0; chunk < chunks; chunk++) {
      const int n0 = chunk * per_chunk, nb = std::min(per_chunk, N - n0);
      const int64_t t = (int64_t)nb * tl.tiles;
      for (int g = 0; g < G; g++) {
        transform_input(V, T, inp, n0, nb, C, g * Cg, Cg, H, W, P, tl);
        const float* Ug = U + (int64_t)g * kXi * Og * Cg;
        for (int xi = 0; xi < kXi; xi++)
          gemm(scratch.precision, false, false, Og, (int)t, Cg, 1.0f,
                      Ug + (int64_t)xi * Og * Cg, Cg, V + xi * Cg * T, (int)T, 0.0f,
                      M + xi * Og * T, (int)T);
        transform_output(out, M, T, n0, nb, O, g * Og, Og, bias, tl);
      }
    }
  }
}

}  // namespace

// Measured with native/build/bench_conv (batch 128, 2 cores, forward/backward against im2col
// per image): the paper's conv3-5 at 13x13 x1.51-1.63 / x1.42-1.64; alexnet-64's at 6x6
// x1.45-1.76 / x1.28-1.66, but alexnet-32's at 7x7 x0.64-0.82 / x0.59, where the 2x2 tiles
// cover 64 outputs for 49 (the 13x13 layers: 196 for 169) and the GEMMs are small
// (48-96 channels). So: tiles that waste at most a fifth, and 32 channels or more a side.
bool winograd_wins(int N, int Cg, int H, int W, int Og, int K, int S, int P) {
  if (K != 3 || S != 1 || N < omp_get_max_threads() || std::min(Cg, Og) < 32) return false;
  const Tiling tl(H, W, P);
  return 4 * tl.tiles * 5 <= tl.OH * tl.OW * 6;
}

void winograd_conv_forward(float* out, const float* inp, const float* weight, const float* bias,
                           int N, int C, int H, int W, int O, int P, int G, Scratch& scratch) {
  const int Cg = C / G, Og = O / G;
  scratch.stage.resize((size_t)G * kXi * Og * Cg);
  for (int g = 0; g < G; g++)
    transform_filters(scratch.stage.data() + (int64_t)g * kXi * Og * Cg, weight + (int64_t)g * Og * Cg * 9, Og, Cg, false);
  winograd_apply(out, inp, scratch.stage.data(), bias, N, C, H, W, O, P, G, scratch);
}

void winograd_conv_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                            const float* inp, const float* weight, int N, int C, int H, int W,
                            int O, int P, int G, Scratch& scratch) {
  const Tiling tl(H, W, P);
  const int Cg = C / G, Og = O / G;
  const int64_t ohw = (int64_t)tl.OH * tl.OW, wsize = (int64_t)O * Cg * 9;
  // The input gradient: dout convolved with the turned filters, padding 2-P, giving H x W.
  if (dinp) {
    scratch.stage.resize((size_t)G * kXi * Og * Cg);
    for (int g = 0; g < G; g++)
      transform_filters(scratch.stage.data() + (int64_t)g * kXi * Og * Cg, weight + (int64_t)g * Og * Cg * 9, Og, Cg, true);
    winograd_apply(dinp, dout, scratch.stage.data(), nullptr, N, O, tl.OH, tl.OW, C, 2 - P, G, scratch);
  }
  // The weight and bias gradients, per slot.
  const int slots = grad_slots(N);
  const int per_chunk = std::max(1, std::min(kTargetTiles / tl.tiles, (N + slots - 1) / slots));
  const int64_t T = (int64_t)per_chunk * tl.tiles, vsize = (int64_t)kXi * Cg * T,
                msize = (int64_t)kXi * Og * T, usize = (int64_t)kXi * Og * Cg;
  scratch.col.resize((size_t)omp_get_max_threads() * (vsize + msize + usize));
  size_grad_slots(scratch, slots, wsize, O);
#pragma omp parallel
  {
    float* V = scratch.col.data() + omp_get_thread_num() * (vsize + msize + usize);
    float* dM = V + vsize;
    float* dU = dM + msize;
#pragma omp for schedule(dynamic, 1)
    for (int slot = 0; slot < slots; slot++) {
      float* dw = scratch.grad_slots.data() + slot * wsize;
      double* db = scratch.bias_slots.data() + (int64_t)slot * O;
      const int s0 = slot_first(slot, slots, N), s1 = slot_first(slot + 1, slots, N);
      for (int n0 = s0; n0 < s1; n0 += per_chunk) {
        const int nb = std::min(per_chunk, s1 - n0);
        const int64_t t = (int64_t)nb * tl.tiles;
        for (int n = n0; n < n0 + nb; n++)
          for (int o = 0; o < O; o++) db[o] += sum_in_lanes(dout + ((int64_t)n * O + o) * ohw, ohw);
        for (int g = 0; g < G; g++) {
          transform_input(V, T, inp, n0, nb, C, g * Cg, Cg, H, W, P, tl);
          transform_output_grad(dM, T, dout, n0, nb, O, g * Og, Og, tl);
          for (int xi = 0; xi < kXi; xi++)
            gemm(scratch.precision, false, true, Og, Cg, (int)t, 1.0f,
                        dM + xi * Og * T, (int)T, V + xi * Cg * T, (int)T, 0.0f,
                        dU + xi * Og * Cg, Cg);
          filter_grad(dw + (int64_t)g * Og * Cg * 9, dU, Og, Cg, n0 != s0);
        }
      }
    }
    add_grad_slots(dweight, dbias, scratch, slots, wsize, O);
  }
}

}  // namespace alexnet
