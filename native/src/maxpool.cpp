// Max pooling without padding (the paper's overlapping 3x3 stride 2, or any K, S).
#include <cstring>

#include "layers.h"

namespace alexnet {

void maxpool_forward(float* out, int32_t* argmax, const float* inp, int N, int C, int H, int W,
                     int K, int S) {
  const int OH = (H - K) / S + 1, OW = (W - K) / S + 1;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < (int64_t)N * C; plane++) {
    const float* a = inp + plane * H * W;
    float* b = out + plane * OH * OW;
    int32_t* idx = argmax + plane * OH * OW;
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        int best = oh * S * W + ow * S;
        float m = a[best];
        for (int kh = 0; kh < K; kh++)
          for (int kw = 0; kw < K; kw++) {
            const int i = (oh * S + kh) * W + ow * S + kw;
            if (a[i] > m || (a[i] != a[i] && m == m)) {  // a NaN wins and propagates
              m = a[i];
              best = i;
            }
          }
        b[oh * OW + ow] = m;
        idx[oh * OW + ow] = best;
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
