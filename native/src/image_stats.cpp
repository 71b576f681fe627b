// See image_stats.h. Blocks of positions are split over threads (each thread owns its
// positions across all images); channel sums and products are integer partial sums per
// thread, added at the end.
#include "image_stats.h"

#include <omp.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace alexnet {

void image_stats_accumulate(const uint8_t* pixels, int64_t n, int H, int W, double* pixel_sum,
                            double* rgb_sum, double* rgb_outer_sum) {
  if (n < 0 || H < 1 || W < 1)
    throw std::invalid_argument("image statistics: n must be >= 0 and H, W >= 1, got n=" +
                                std::to_string(n) + " H=" + std::to_string(H) + " W=" + std::to_string(W));
  const int64_t positions = (int64_t)H * W;
  // Each call's products sum to at most n * positions * 255^2; keep them exact.
  if ((double)n * (double)positions * 65025.0 >= 9007199254740992.0)
    throw std::invalid_argument("image statistics: " + std::to_string(n) + " images of " +
                                std::to_string(H) + "x" + std::to_string(W) +
                                " in one call could exceed float64's exact integers; pass fewer");
  const int64_t row = positions * 3;
  // Blocks of positions: every image's block is one contiguous run of 3 * kBlock bytes,
  // so the reads stream, and a block's sums stay in cache across all n images.
  constexpr int64_t kBlock = 1024;
  const int64_t blocks = (positions + kBlock - 1) / kBlock;
  std::vector<int64_t> partial;  // per thread: r, g, b, rr, rg, rb, gg, gb, bb
#pragma omp parallel
  {
#pragma omp single
    partial.assign((size_t)omp_get_num_threads() * 9, 0);
    int64_t* acc = partial.data() + (size_t)omp_get_thread_num() * 9;
    std::vector<int64_t> sums(3 * kBlock);
    int64_t rr = 0, rg = 0, rb = 0, gg = 0, gb = 0, bb = 0;
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; blk++) {
      const int64_t p0 = blk * kBlock, len = std::min(kBlock, positions - p0);
      std::fill(sums.begin(), sums.begin() + 3 * len, 0);
      for (int64_t i = 0; i < n; i++) {
        const uint8_t* px = pixels + i * row + p0 * 3;
        for (int64_t e = 0; e < 3 * len; e++) sums[e] += px[e];
        for (int64_t q = 0; q < len; q++) {
          const int64_t x = px[3 * q], y = px[3 * q + 1], z = px[3 * q + 2];
          rr += x * x; rg += x * y; rb += x * z; gg += y * y; gb += y * z; bb += z * z;
        }
      }
      for (int64_t e = 0; e < 3 * len; e++) {
        pixel_sum[p0 * 3 + e] += (double)sums[e];
        acc[e % 3] += sums[e];
      }
    }
    acc[3] = rr; acc[4] = rg; acc[5] = rb; acc[6] = gg; acc[7] = gb; acc[8] = bb;
  }
  int64_t t[9] = {0};
  for (size_t i = 0; i < partial.size(); i++) t[i % 9] += partial[i];
  rgb_sum[0] += (double)t[0];
  rgb_sum[1] += (double)t[1];
  rgb_sum[2] += (double)t[2];
  const int64_t rr = t[3], rg = t[4], rb = t[5], gg = t[6], gb = t[7], bb = t[8];
  const int64_t outer[9] = {rr, rg, rb, rg, gg, gb, rb, gb, bb};
  for (int k = 0; k < 9; k++) rgb_outer_sum[k] += (double)outer[k];
}

}  // namespace alexnet
