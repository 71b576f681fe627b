// Dataset statistics sums over uint8 images (activities/image-stats.ts has the plain
// reference and the merge/finalize): per position and channel the pixel sum, per channel
// the sum, and the 3x3 sum of x x^T over every pixel. Every sum is of integers and stays
// below 2^53, so float64 holds it exactly and the order of summation cannot matter: the
// result equals the reference's to the bit.
#pragma once
#include <cstdint>

namespace alexnet {

// pixels: (n, H, W, 3) uint8. Adds into pixel_sum (H, W, 3), rgb_sum (3) and
// rgb_outer_sum (3, 3, row-major, symmetric). Throws std::invalid_argument on bad sizes
// or when a sum could leave the exact range (more than 2^53 / (255^2 * H * W) images).
void image_stats_accumulate(const uint8_t* pixels, int64_t n, int H, int W, double* pixel_sum,
                            double* rgb_sum, double* rgb_outer_sum);

}  // namespace alexnet
