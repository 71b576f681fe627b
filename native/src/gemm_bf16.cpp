// bf16 GEMM with fp32 accumulation on AVX512_BF16 (VDPBF16PS: each fp32 lane adds the
// products of two bf16 pairs, so a 512-bit instruction does 32 multiply-adds where an fp32
// FMA does 16). Row-major, cblas_sgemm's arguments; A and B are rounded to bf16 (nearest
// even) as they are packed, C and the sums stay fp32.
//
// Packing, per block of kKc values of K (kKc/2 pairs):
//   B: panels of kNr = 32 columns; per pair p, 32 x uint32 (B[2p][j] low half, B[2p+1][j]
//      high half): two zmm registers. Columns past N and the odd K's partner are zeros.
//   A: panels of kMr = 12 rows; per pair p, 12 x uint32 (A[i][2p], A[i][2p+1]), each
//      broadcast to a zmm register in the kernel.
// The kernel keeps a 12 x 32 tile of C in 24 zmm accumulators. Blocks of K are visited in
// order, so the sums do not depend on the thread count (threads take row panels).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined values.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace alexnet {
namespace {

constexpr int kMr = 12, kNr = 32, kKc = 512;

// 16 pairs (lo[j], hi[j]) of bf16, as 16 x uint32 (lo in the low half).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
inline __m512i pairs16(__m512 lo, __m512 hi) {
  const __m512i l = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(lo));
  const __m512i h = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(hi));
  return _mm512_or_si512(l, _mm512_slli_epi32(h, 16));
}

// 16 consecutive pairs from 32 consecutive floats x[0..31] (x[2q] low, x[2q+1] high); n < 32
// floats are read, the rest taken as zeros.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
inline __m512i pairs_of_run(const float* x, int n) {
  const __mmask16 m_lo = (__mmask16)(n >= 16 ? 0xffff : (1u << std::max(n, 0)) - 1);
  const __mmask16 m_hi = (__mmask16)(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1 : 0);
  const __m512 lo = _mm512_maskz_loadu_ps(m_lo, x), hi = _mm512_maskz_loadu_ps(m_hi, x + 16);
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// out[c] = column c of the 16x16 matrix of 32-bit values whose rows are in[0..15].
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
inline void transpose16(const __m512i in[16], __m512i out[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(in[i], in[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(in[i], in[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // u[4b + k] holds, in its four 128-bit lanes, columns k, k+4, k+8, k+12 of rows 4b..4b+3.
  for (int k = 0; k < 4; k++) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0x88), v1 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0xdd);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0x88), v3 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0xdd);
    out[k] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    out[k + 8] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
    out[k + 4] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    out[k + 12] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
  }
}

// B's block of rows [k0, k0+kc), all N columns, into panels. An untransposed B is converted
// 16 columns of a row pair at a time; a transposed one (column j contiguous along K) 16
// pairs of a column at a time; only the columns past N are zeros.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
void pack_b(uint32_t* out, const float* B, int ldb, bool trans_b, int N, int k0, int kc) {
  const int pairs = (kc + 1) / 2, panels = (N + kNr - 1) / kNr;
  // Outside a parallel region every thread packs panels (a linear layer's B is all of its
  // weights: one thread packing them alone left the others waiting).
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && panels > 1)
  for (int p = 0; p < panels; p++) {
    uint32_t* panel = out + (int64_t)p * pairs * kNr;
    const int cols = std::min(kNr, N - p * kNr);
    if (!trans_b) {
      const __mmask16 m[2] = {(__mmask16)(cols >= 16 ? 0xffff : (1u << cols) - 1),
                              (__mmask16)(cols >= 32 ? 0xffff : cols > 16 ? (1u << (cols - 16)) - 1 : 0)};
      for (int q = 0; q < pairs; q++) {
        const float* lo = B + (int64_t)(k0 + 2 * q) * ldb + p * kNr;
        const bool has_hi = 2 * q + 1 < kc;
        for (int h = 0; h < 2; h++) {
          const __m512 vl = _mm512_maskz_loadu_ps(m[h], lo + 16 * h);
          const __m512 vh = has_hi ? _mm512_maskz_loadu_ps(m[h], lo + ldb + 16 * h) : _mm512_setzero_ps();
          _mm512_storeu_si512(panel + q * kNr + 16 * h, pairs16(vl, vh));
        }
      }
    } else {
      // Column j's pairs are a run along K: 16 columns x 16 pairs at a time, transposed.
      __m512i rows[16], cols16[16];
      for (int j0 = 0; j0 < kNr; j0 += 16)
        for (int q0 = 0; q0 < pairs; q0 += 16) {
          for (int j = 0; j < 16; j++)
            rows[j] = j0 + j < cols ? pairs_of_run(B + (int64_t)(p * kNr + j0 + j) * ldb + k0 + 2 * q0, kc - 2 * q0)
                                    : _mm512_setzero_si512();
          transpose16(rows, cols16);
          for (int q = 0; q < std::min(16, pairs - q0); q++) _mm512_storeu_si512(panel + (q0 + q) * kNr + j0, cols16[q]);
        }
    }
  }
}

// A's rows [i0, i0+kMr) (zeros past M), columns [k0, k0+kc): 12 pairs per K pair. A
// transposed A (row k contiguous along M) gives a pair row in one go; an untransposed one
// 16 pairs of a row at a time.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
void pack_a(uint32_t* out, const float* A, int lda, bool trans_a, int M, int i0, int k0, int kc) {
  const int pairs = (kc + 1) / 2, rows = std::min(kMr, M - i0);
  if (trans_a) {
    const __mmask16 m = (__mmask16)((1u << rows) - 1);
    alignas(64) uint32_t row[16];
    for (int q = 0; q < pairs; q++) {
      const float* lo = A + (int64_t)(k0 + 2 * q) * lda + i0;
      const __m512 vl = _mm512_maskz_loadu_ps(m, lo);
      const __m512 vh = 2 * q + 1 < kc ? _mm512_maskz_loadu_ps(m, lo + lda) : _mm512_setzero_ps();
      _mm512_store_si512(row, pairs16(vl, vh));
      std::memcpy(out + q * kMr, row, sizeof(uint32_t) * kMr);
    }
    return;
  }
  // Row r's pairs are a run along K: 12 rows (and 4 of zeros) x 16 pairs at a time, transposed.
  __m512i rows_in[16], cols16[16];
  for (int r = kMr; r < 16; r++) rows_in[r] = _mm512_setzero_si512();
  for (int q0 = 0; q0 < pairs; q0 += 16) {
    for (int r = 0; r < kMr; r++)
      rows_in[r] = r < rows ? pairs_of_run(A + (int64_t)(i0 + r) * lda + k0 + 2 * q0, kc - 2 * q0) : _mm512_setzero_si512();
    transpose16(rows_in, cols16);
    for (int q = 0; q < std::min(16, pairs - q0); q++) _mm512_mask_storeu_epi32(out + (q0 + q) * kMr, (__mmask16)0x0fff, cols16[q]);
  }
}

// C[0:mr, 0:nr] (ldc) = alpha * (Ap @ Bp) + (first ? beta * C : C); mr <= kMr, nr <= kNr.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
void kernel(int pairs, const uint32_t* Ap, const uint32_t* Bp, float* C, int ldc, int mr, int nr,
            float alpha, float beta, bool first) {
  __m512 acc[kMr][2];
  for (int r = 0; r < kMr; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int q = 0; q < pairs; q++) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(Bp + q * kNr);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(Bp + q * kNr + 16);
    const uint32_t* a = Ap + q * kMr;
#pragma GCC unroll 12
    for (int r = 0; r < kMr; r++) {
      const __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
    }
  }
  const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1);
  const __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffff : nr > 16 ? (1u << (nr - 16)) - 1 : 0);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int r = 0; r < mr; r++) {
    float* c = C + (int64_t)r * ldc;
    const __mmask16 masks[2] = {m0, m1};
    for (int h = 0; h < 2; h++) {
      if (!masks[h]) continue;
      __m512 v = _mm512_mul_ps(va, acc[r][h]);
      if (!first) {
        v = _mm512_add_ps(_mm512_maskz_loadu_ps(masks[h], c + 16 * h), v);
      } else if (beta != 0.0f) {  // beta 0: C is not read (it may hold anything), as in BLAS
        v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(masks[h], c + 16 * h), v);
      }
      _mm512_mask_storeu_ps(c + 16 * h, masks[h], v);
    }
  }
}

}  // namespace

void gemm_bf16(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
               int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // C = beta * C
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(int64_t)i * ldc + j];
    return;
  }
  const int panels = (N + kNr - 1) / kNr, row_panels = (M + kMr - 1) / kMr;
  static thread_local std::vector<uint32_t> packed_b, packed_a;
  for (int k0 = 0; k0 < K; k0 += kKc) {
    const int kc = std::min(kKc, K - k0), pairs = (kc + 1) / 2;
    packed_b.resize((size_t)panels * pairs * kNr);
    pack_b(packed_b.data(), B, ldb, trans_b, N, k0, kc);
    const uint32_t* Bp = packed_b.data();
    const bool first = k0 == 0;
    // Outside a parallel region, threads take row panels (each packs its own A panel).
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && row_panels > 1)
    for (int rp = 0; rp < row_panels; rp++) {
      std::vector<uint32_t>& Ap = packed_a;  // thread_local: this thread's
      Ap.resize((size_t)pairs * kMr);
      const int i0 = rp * kMr, mr = std::min(kMr, M - i0);
      pack_a(Ap.data(), A, lda, trans_a, M, i0, k0, kc);
      for (int p = 0; p < panels; p++)
        kernel(pairs, Ap.data(), Bp + (int64_t)p * pairs * kNr, C + (int64_t)i0 * ldc + p * kNr, ldc, mr,
               std::min(kNr, N - p * kNr), alpha, beta, first);
    }
  }
}

}  // namespace alexnet

#else  // not x86-64: bf16_gemm_available() is false and gemm() never calls this

namespace alexnet {
void gemm_bf16(bool, bool, int, int, int, float, const float*, int, const float*, int, float, float*, int) {
  throw std::logic_error("gemm_bf16: no AVX512_BF16 on this architecture");
}
}  // namespace alexnet

#endif
