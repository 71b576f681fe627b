// The paper's data augmentation and test-time crops, from batch-file pixels to network
// input: uint8 images (N, S, S, 3) interleaved RGB in, float32 patches (N, 3, C, C) NCHW
// out, raw pixel units 0..255 minus the mean image (taken at the patch's source position,
// so a patch is exactly "image minus mean image, then cropped").
//
// Training (augment_train): per image a random C x C patch (offset x, y uniform in
// [0, S-C]), a horizontal reflection with probability 1/2, and the PCA colour noise
//   delta = sum_i p_i * alpha_i * lambda_i,  alpha_i ~ N(0, pca_sigma)
// added to every pixel (p_i, lambda_i: eigenvectors/eigenvalues of the training set's
// RGB covariance; drawn once per image per use). So, for x, y in [0, C):
//   out[n][c][y][x] = inp[n][oy+y][ox+xs][c] - mean[oy+y][ox+xs][c] + delta[c],
//   xs = flip ? C-1-x : x.
// Test (augment_center, augment_ten_crop): the central patch, or the paper's ten patches.
//
// Units of lambda: the formula is applied literally to whatever pca_values holds, in
// output units. The statistics in stats.json are eigenvalues of the 0..255 covariance
// (variances, 255^2 units); the paper's formula is stated for pixels in [0, 1], which in
// 0..255 units means pca_values = eigenvalue / 255 (paperPcaValues in native/augment.ts,
// which also notes the sqrt(eigenvalue) reading). Raw eigenvalues give absurd noise.
//
// Draws: every random number is a pure function of (seed, stream, counter, index) from
// rng.h, with index = (first_index + n) * 8 + k for image n of the call:
//   stream RNG_STREAM_AUGMENT     k = 0 crop x, 1 crop y, 2 flip (rng_draw)
//   stream RNG_STREAM_AUGMENT + 1 k = 0, 1, 2: alpha_0..2 (rng_normal, which itself reads
//                                 raw draws 2*index and 2*index+1, hence its own stream)
// so a batch split into pieces with matching first_index augments identically, the
// result does not depend on the thread count, and a GPU kernel can reproduce the crops
// and flips bit for bit (the colour noise up to the last bits of log/cos).
//
// Sizes are checked first: a bad one throws std::invalid_argument naming it.
#pragma once
#include <cstdint>

namespace alexnet {

// The random choices for one training image (exposed so that tests and a GPU port can
// check against them). delta is zero without PCA (pca_vectors or pca_values null).
struct AugmentDraw {
  int ox = 0, oy = 0;  // patch offset: column, row of the source image
  bool flip = false;   // horizontal reflection
  float delta[3] = {0.0f, 0.0f, 0.0f};  // colour noise added to R, G, B
};
AugmentDraw augment_draw(int S, int C, const float* pca_vectors, const float* pca_values,
                         float pca_sigma, uint64_t seed, uint64_t counter, uint64_t image_index);

// out (N,3,C,C); inp (N,S,S,3); mean (S,S,3) or null; pca_vectors (3,3) row-major with
// the eigenvectors as columns and pca_values (3), both or neither (no colour noise).
// Image n uses image_index first_index + n.
void augment_train(float* out, const uint8_t* inp, int N, int S, int C, const float* mean,
                   const float* pca_vectors, const float* pca_values, float pca_sigma,
                   uint64_t seed, uint64_t counter, uint64_t first_index);

// out (N,3,C,C): the central patch, offset ((S-C)/2, (S-C)/2), no reflection, no noise.
void augment_center(float* out, const uint8_t* inp, int N, int S, int C, const float* mean);

// out (N*10,3,C,C), image-major: patches 10n..10n+9 of image n are the corners top-left,
// top-right, bottom-left, bottom-right, the centre, then the same five reflected (the
// paper's test: average the softmax over these ten).
void augment_ten_crop(float* out, const uint8_t* inp, int N, int S, int C, const float* mean);

}  // namespace alexnet
