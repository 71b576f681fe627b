// Max pooling without padding (the paper's overlapping 3x3 stride 2, or any K, S).
#include <cstring>
#include <vector>

#include "layers.h"

namespace alexnet {

// Vectorized over a row of outputs. Each input row is split into its S phases (the
// columns x with x % S == r), so tap kw of every output in the row is one contiguous run,
// phases[kw % S][ow + kw / S]. Rows are padded to a multiple of 8 lanes so the inner loops
// have no remainder; the padding's results are never stored. Each output still scans its
// taps in (kh, kw) order, so ties and NaNs resolve as in the plain loop (the first maximum
// wins; the first NaN wins and propagates): test_layers checks it against that loop.
void maxpool_forward(float* out, int32_t* argmax, const float* inp, int N, int C, int H, int W,
                     int K, int S) {
  const int OH = (H - K) / S + 1, OW = (W - K) / S + 1;
  const int OWP = (OW + 7) / 8 * 8;
  const int PW = OWP + (K - 1) / S + 1;  // phase length: every tap of every padded output
#pragma omp parallel
  {
    std::vector<float> mbuf(OWP), pbuf((size_t)S * PW, 0.0f);
    std::vector<int32_t> bbuf(OWP);
    float* __restrict m = mbuf.data();
    int32_t* __restrict best = bbuf.data();
    float* __restrict phases = pbuf.data();
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < (int64_t)N * C; plane++) {
      const float* a = inp + plane * H * W;
      float* b = out + plane * OH * OW;
      int32_t* idx = argmax + plane * OH * OW;
      for (int oh = 0; oh < OH; oh++) {
        for (int kh = 0; kh < K; kh++) {
          const int r0 = (oh * S + kh) * W;
          const float* row = a + r0;
          for (int r = 0; r < S; r++)
            for (int j = 0; j * S + r < W; j++) phases[(size_t)r * PW + j] = row[j * S + r];
          for (int kw = 0; kw < K; kw++) {
            const float* __restrict src = phases + (size_t)(kw % S) * PW + kw / S;
            const int i0 = r0 + kw;
            if (kh == 0 && kw == 0) {
              for (int ow = 0; ow < OWP; ow++) {
                m[ow] = src[ow];
                best[ow] = i0 + ow * S;
              }
              continue;
            }
            for (int ow = 0; ow < OWP; ow++) {
              const float v = src[ow], cur = m[ow];
              const bool take = (v > cur) | ((v != v) & (cur == cur));  // a NaN wins and propagates
              m[ow] = take ? v : cur;
              best[ow] = take ? i0 + ow * S : best[ow];
            }
          }
        }
        std::memcpy(b + oh * OW, m, sizeof(float) * OW);
        std::memcpy(idx + oh * OW, best, sizeof(int32_t) * OW);
      }
    }
  }
}


void maxpool_backward(float* dinp, const float* dout, const int32_t* argmax, int N, int C, int H,
                      int W, int K, int S) {
  const int OH = (H - K) / S + 1, OW = (W - K) / S + 1;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < (int64_t)N * C; plane++) {
    float* d = dinp + plane * H * W;
    std::memset(d, 0, sizeof(float) * H * W);
    const float* g = dout + plane * OH * OW;
    const int32_t* idx = argmax + plane * OH * OW;
    for (int i = 0; i < OH * OW; i++) d[idx[i]] += g[i];
  }
}

}  // namespace alexnet
