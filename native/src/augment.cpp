// Crop, reflect, subtract the mean image, add colour noise: every output patch is a list
// of Patch entries (source image, offset, flip, delta) written by one loop over output
// rows, so the training, centre and ten-crop paths share one kernel. The loop runs over
// (patch, row) pairs rather than images, so a batch smaller than the thread count still
// uses every thread; each output value is a pure function of its inputs, so the result is
// the same whatever the thread count.
#include "augment.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "rng.h"

namespace alexnet {
namespace {

struct Patch {
  int64_t image;  // source image in inp
  AugmentDraw d;
};

void check_sizes(const float* out, const uint8_t* inp, int N, int S, int C) {
  if (N < 0) throw std::invalid_argument("batch size N must be >= 0, got " + std::to_string(N));
  if (S < 1) throw std::invalid_argument("image size S must be >= 1, got " + std::to_string(S));
  if (C < 1 || C > S)
    throw std::invalid_argument("crop size C must be between 1 and the image size " +
                                std::to_string(S) + ", got " + std::to_string(C));
  if (N > 0 && (!out || !inp)) throw std::invalid_argument("out and inp must not be null");
}

// One output row y of one patch: 3 rows of C floats (one per channel plane).
// Templated so the common loops (no mean, no flip) carry no per-pixel branch.
template <bool kMean, bool kFlip>
void write_row(float* out, const uint8_t* src, const float* mean, int C, const float* delta) {
  float* o0 = out;
  float* o1 = out + (int64_t)C * C;
  float* o2 = o1 + (int64_t)C * C;
  const float d0 = delta[0], d1 = delta[1], d2 = delta[2];
  for (int x = 0; x < C; x++) {
    const int xs = kFlip ? C - 1 - x : x;
    const uint8_t* p = src + 3 * xs;
    if (kMean) {
      const float* m = mean + 3 * xs;
      o0[x] = ((float)p[0] - m[0]) + d0;
      o1[x] = ((float)p[1] - m[1]) + d1;
      o2[x] = ((float)p[2] - m[2]) + d2;
    } else {
      o0[x] = (float)p[0] + d0;
      o1[x] = (float)p[1] + d1;
      o2[x] = (float)p[2] + d2;
    }
  }
}

// out (P,3,C,C) from patches[p] of inp (N,S,S,3).
void write_patches(float* out, const uint8_t* inp, const float* mean, int S, int C,
                   const std::vector<Patch>& patches) {
  const int64_t rows = (int64_t)patches.size() * C;
  const int64_t plane = (int64_t)C * C, image = (int64_t)S * S * 3;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const Patch& pt = patches[r / C];
    const int y = (int)(r % C);
    const int64_t at = ((int64_t)(pt.d.oy + y) * S + pt.d.ox) * 3;  // source (row, first column)
    const uint8_t* src = inp + pt.image * image + at;
    const float* m = mean ? mean + at : nullptr;
    float* o = out + (r / C) * 3 * plane + (int64_t)y * C;
    if (m)
      pt.d.flip ? write_row<true, true>(o, src, m, C, pt.d.delta)
                : write_row<true, false>(o, src, m, C, pt.d.delta);
    else
      pt.d.flip ? write_row<false, true>(o, src, m, C, pt.d.delta)
                : write_row<false, false>(o, src, m, C, pt.d.delta);
  }
}

// Uniform integer in [0, range) from the top 32 bits of a draw (multiply-shift: no
// division, bias below 2^-32 * range, and the same integer arithmetic on a GPU).
int uniform_int(uint64_t draw, int range) {
  return (int)(((draw >> 32) * (uint64_t)range) >> 32);
}

}  // namespace

AugmentDraw augment_draw(int S, int C, const float* pca_vectors, const float* pca_values,
                         float pca_sigma, uint64_t seed, uint64_t counter, uint64_t image_index) {
  AugmentDraw d;
  const uint64_t base = image_index * 8;
  const int range = S - C + 1;
  d.ox = uniform_int(rng_draw(seed, RNG_STREAM_AUGMENT, counter, base + 0), range);
  d.oy = uniform_int(rng_draw(seed, RNG_STREAM_AUGMENT, counter, base + 1), range);
  d.flip = (rng_draw(seed, RNG_STREAM_AUGMENT, counter, base + 2) >> 63) != 0;
  if (pca_vectors && pca_values) {
    // alpha_i * lambda_i, then delta = V (alpha * lambda); in double, rounded once.
    double scaled[3];
    for (int i = 0; i < 3; i++)
      scaled[i] = (double)pca_sigma * rng_normal(seed, RNG_STREAM_AUGMENT + 1, counter, base + i) *
                  (double)pca_values[i];
    for (int c = 0; c < 3; c++)
      d.delta[c] = (float)((double)pca_vectors[c * 3 + 0] * scaled[0] +
                           (double)pca_vectors[c * 3 + 1] * scaled[1] +
                           (double)pca_vectors[c * 3 + 2] * scaled[2]);
  }
  return d;
}

void augment_train(float* out, const uint8_t* inp, int N, int S, int C, const float* mean,
                   const float* pca_vectors, const float* pca_values, float pca_sigma,
                   uint64_t seed, uint64_t counter, uint64_t first_index) {
  check_sizes(out, inp, N, S, C);
  if (!pca_vectors != !pca_values)
    throw std::invalid_argument("pca_vectors and pca_values must be given together (or neither)");
  if (!(pca_sigma >= 0.0f && pca_sigma < 1e30f))  // also refuses NaN
    throw std::invalid_argument("pca_sigma must be a finite number >= 0, got " +
                                std::to_string(pca_sigma));
  std::vector<Patch> patches(N);
  for (int n = 0; n < N; n++)
    patches[n] = {n, augment_draw(S, C, pca_vectors, pca_values, pca_sigma, seed, counter,
                                  first_index + (uint64_t)n)};
  write_patches(out, inp, mean, S, C, patches);
}

void augment_center(float* out, const uint8_t* inp, int N, int S, int C, const float* mean) {
  check_sizes(out, inp, N, S, C);
  std::vector<Patch> patches(N);
  for (int n = 0; n < N; n++) {
    patches[n].image = n;
    patches[n].d.ox = patches[n].d.oy = (S - C) / 2;
  }
  write_patches(out, inp, mean, S, C, patches);
}

void augment_ten_crop(float* out, const uint8_t* inp, int N, int S, int C, const float* mean) {
  check_sizes(out, inp, N, S, C);
  const int e = S - C, h = (S - C) / 2;
  const int offsets[5][2] = {{0, 0}, {e, 0}, {0, e}, {e, e}, {h, h}};  // (x, y): TL TR BL BR centre
  std::vector<Patch> patches((size_t)N * 10);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < 10; k++) {
      Patch& p = patches[(size_t)n * 10 + k];
      p.image = n;
      p.d.ox = offsets[k % 5][0];
      p.d.oy = offsets[k % 5][1];
      p.d.flip = k >= 5;
    }
  write_patches(out, inp, mean, S, C, patches);
}

}  // namespace alexnet
