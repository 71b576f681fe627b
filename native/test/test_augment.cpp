// Standalone augmentation tests (no Node): the centre and ten-crop patches against a
// reference loop (exact), the training crops against their draws (exact), the reach and
// rates of the random offsets and flips, the covariance of the PCA colour noise, bitwise
// determinism across thread counts and batch splits, size errors; then a timing.
// Run: native/build/test_augment  (prints "N passed, N failed"; exit 1 on failure).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "augment.h"
#include "check.h"
#include "layers.h"
#include "rng.h"

using namespace alexnet;

// Pixels and a mean image that differ at every position and channel, so a patch taken
// at the wrong place, a wrong channel order or a mean at the wrong position shows.
static std::vector<uint8_t> make_images(int N, int S, uint64_t salt) {
  std::vector<uint8_t> v((size_t)N * S * S * 3);
  for (size_t i = 0; i < v.size(); i++) v[i] = (uint8_t)(rng_draw(salt, 77, 0, i) >> 56);
  return v;
}
static std::vector<float> make_mean(int S) {
  std::vector<float> v((size_t)S * S * 3);
  for (size_t i = 0; i < v.size(); i++) v[i] = 100.0f + (float)(rng_uniform(3, 78, 0, i) * 50.0);
  return v;
}

// The definition: out[c][y][x] = inp[oy+y][ox+xs][c] - mean[oy+y][ox+xs][c] + delta[c].
static std::vector<float> reference_patch(const uint8_t* img, const float* mean, int S, int C,
                                          const AugmentDraw& d) {
  std::vector<float> out((size_t)3 * C * C);
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < C; y++)
      for (int x = 0; x < C; x++) {
        const int xs = d.flip ? C - 1 - x : x;
        const size_t at = ((size_t)(d.oy + y) * S + d.ox + xs) * 3 + c;
        const float m = mean ? mean[at] : 0.0f;
        out[((size_t)c * C + y) * C + x] = ((float)img[at] - m) + d.delta[c];
      }
  return out;
}

static bool same_bits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

static void test_center() {
  for (int S : {5, 8, 36}) {
    for (int C : {1, S / 2, S - 1, S}) {
      const int N = 3;
      auto img = make_images(N, S, S * 100 + C);
      auto mean = make_mean(S);
      for (const float* m : {(const float*)nullptr, (const float*)mean.data()}) {
        std::vector<float> out((size_t)N * 3 * C * C);
        augment_center(out.data(), img.data(), N, S, C, m);
        AugmentDraw d;
        d.ox = d.oy = (S - C) / 2;
        bool ok = true;
        for (int n = 0; n < N; n++) {
          auto ref = reference_patch(img.data() + (size_t)n * S * S * 3, m, S, C, d);
          ok = ok && same_bits(out.data() + (size_t)n * 3 * C * C, ref.data(), ref.size());
        }
        CHECK(ok, "centre crop S=%d C=%d mean=%d differs from the reference loop", S, C, m != nullptr);
      }
    }
  }
  // A hand-checked value: the 1x1 centre of a 3x3 image is pixel (1, 1), channels in order.
  std::vector<uint8_t> img(27);
  for (int i = 0; i < 27; i++) img[i] = (uint8_t)i;
  float out[3];
  augment_center(out, img.data(), 1, 3, 1, nullptr);
  CHECK(out[0] == 12 && out[1] == 13 && out[2] == 14, "3x3 centre is (%g %g %g), expected (12 13 14)",
        out[0], out[1], out[2]);
}

static void test_ten_crop() {
  const int N = 2, S = 9, C = 5, e = S - C, h = e / 2;
  auto img = make_images(N, S, 11);
  auto mean = make_mean(S);
  std::vector<float> out((size_t)N * 10 * 3 * C * C);
  augment_ten_crop(out.data(), img.data(), N, S, C, mean.data());
  const int offsets[5][2] = {{0, 0}, {e, 0}, {0, e}, {e, e}, {h, h}};
  const char* names[5] = {"top-left", "top-right", "bottom-left", "bottom-right", "centre"};
  for (int n = 0; n < N; n++)
    for (int k = 0; k < 10; k++) {
      AugmentDraw d;
      d.ox = offsets[k % 5][0];
      d.oy = offsets[k % 5][1];
      d.flip = k >= 5;
      auto ref = reference_patch(img.data() + (size_t)n * S * S * 3, mean.data(), S, C, d);
      CHECK(same_bits(out.data() + ((size_t)n * 10 + k) * 3 * C * C, ref.data(), ref.size()),
            "ten-crop image %d patch %d (%s%s) differs from the reference", n, k, names[k % 5],
            k >= 5 ? ", reflected" : "");
    }
  // Patch 5+k is patch k mirrored column by column.
  bool mirrored = true;
  for (int k = 0; k < 5; k++)
    for (int r = 0; r < 3 * C; r++)
      for (int x = 0; x < C; x++)
        mirrored = mirrored && out[((size_t)k * 3 * C + r) * C + x] ==
                                   out[((size_t)(k + 5) * 3 * C + r) * C + (C - 1 - x)];
  CHECK(mirrored, "reflected ten-crop patches are not the mirror images of the first five");
}

// Training patches equal the reference at their draws; offsets and flips read back from
// an image that encodes its own coordinates (R = column, G = row) cover every value.
static void test_train_crops() {
  {
    const int N = 6, S = 12, C = 7;
    auto img = make_images(N, S, 21);
    auto mean = make_mean(S);
    const float V[9] = {0.6f, 0.8f, 0.0f, -0.8f, 0.6f, 0.0f, 0.0f, 0.0f, 1.0f};
    const float L[3] = {30.0f, 5.0f, 1.0f};
    std::vector<float> out((size_t)N * 3 * C * C);
    augment_train(out.data(), img.data(), N, S, C, mean.data(), V, L, 0.1f, 9, 4, 100);
    bool ok = true;
    for (int n = 0; n < N; n++) {
      AugmentDraw d = augment_draw(S, C, V, L, 0.1f, 9, 4, 100 + n);
      auto ref = reference_patch(img.data() + (size_t)n * S * S * 3, mean.data(), S, C, d);
      ok = ok && same_bits(out.data() + (size_t)n * 3 * C * C, ref.data(), ref.size());
    }
    CHECK(ok, "training patches differ from the reference loop at their draws");
  }
  const int S = 16, C = 11, R = S - C + 1, N = 4000;
  std::vector<uint8_t> img((size_t)N * S * S * 3);
  for (int n = 0; n < N; n++)
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++) {
        uint8_t* p = &img[(((size_t)n * S + y) * S + x) * 3];
        p[0] = (uint8_t)x;
        p[1] = (uint8_t)y;
        p[2] = 7;
      }
  std::vector<float> out((size_t)N * 3 * C * C);
  augment_train(out.data(), img.data(), N, S, C, nullptr, nullptr, nullptr, 0.1f, 1, 0, 0);
  std::vector<int> seen_x(R), seen_y(R);
  int flips = 0, in_bounds = 0;
  for (int n = 0; n < N; n++) {
    const float* o = out.data() + (size_t)n * 3 * C * C;
    const float* red = o;               // row 0 of channel R: source columns
    const float* green = o + C * C;     // channel G: source rows
    const bool flip = red[1] < red[0];  // columns run backwards
    const int ox = (int)(flip ? red[C - 1] : red[0]), oy = (int)green[0];
    flips += flip;
    bool ok = ox >= 0 && ox <= S - C && oy >= 0 && oy <= S - C && o[2 * C * C] == 7.0f;
    for (int x = 0; x < C; x++) ok = ok && red[x] == (float)(flip ? ox + C - 1 - x : ox + x);
    for (int y = 0; y < C; y++) ok = ok && green[y * C] == (float)(oy + y);
    in_bounds += ok;
    if (ok) {
      seen_x[ox]++;
      seen_y[oy]++;
    }
  }
  CHECK(in_bounds == N, "%d of %d training patches are out of bounds or malformed", N - in_bounds, N);
  int missing = 0, worst = 0;
  for (int i = 0; i < R; i++) {
    missing += (seen_x[i] == 0) + (seen_y[i] == 0);
    worst = std::max({worst, std::abs(seen_x[i] - N / R), std::abs(seen_y[i] - N / R)});
  }
  CHECK(missing == 0, "%d offsets in [0, %d] never drawn over %d images", missing, S - C, N);
  // Each count is binomial(4000, 1/6): sd 24; 5 sd is a loose bound for uniformity.
  CHECK(worst < 5 * 24, "offset counts far from uniform (worst deviation %d of %d)", worst, N / R);
  const double rate = (double)flips / N;  // sd of the rate: 0.0079
  CHECK(std::abs(rate - 0.5) < 0.04, "flip rate %.3f, expected 0.5", rate);
  std::printf("train crops: %d images, every offset reached, flip rate %.3f\n", N, rate);

  // The extremes are drawn: C = S gives offset 0 only, C = S - 1 both 0 and 1.
  AugmentDraw d = augment_draw(8, 8, nullptr, nullptr, 0, 5, 0, 3);
  CHECK(d.ox == 0 && d.oy == 0, "C = S must give offset (0, 0), got (%d, %d)", d.ox, d.oy);
}

// delta = V (alpha * lambda) with alpha ~ N(0, sigma^2 I): covariance V diag(lambda^2
// sigma^2) V^T, mean zero. Read back from a flat grey image with no mean image.
static void test_pca_noise() {
  const int N = 100000, S = 3, C = 2;
  // Columns: the usual ImageNet eigenvectors; lambdas in output units.
  const float V[9] = {-0.5675f, 0.7192f, 0.4009f, -0.5808f, -0.0045f, -0.8140f,
                      -0.5836f, -0.6948f, 0.4203f};
  const float L[3] = {55.46f, 4.794f, 1.148f};
  const float sigma = 0.1f;
  std::vector<uint8_t> img((size_t)N * S * S * 3, 128);
  std::vector<float> out((size_t)N * 3 * C * C);
  augment_train(out.data(), img.data(), N, S, C, nullptr, V, L, sigma, 42, 7, 0);
  double sum[3] = {0, 0, 0}, cov[9] = {0};
  bool flat = true;
  for (int n = 0; n < N; n++) {
    const float* o = out.data() + (size_t)n * 3 * C * C;
    double d[3];
    for (int c = 0; c < 3; c++) {
      d[c] = o[c * C * C] - 128.0;
      for (int i = 1; i < C * C; i++) flat = flat && o[c * C * C + i] == o[c * C * C];
    }
    for (int i = 0; i < 3; i++) {
      sum[i] += d[i];
      for (int j = 0; j < 3; j++) cov[i * 3 + j] += d[i] * d[j];
    }
  }
  CHECK(flat, "the colour noise must be the same at every pixel of an image");
  double worst = 0, scale = 0, mean_worst = 0;
  for (int i = 0; i < 3; i++) {
    mean_worst = std::max(mean_worst, std::abs(sum[i] / N));
    for (int j = 0; j < 3; j++) {
      double expect = 0;
      for (int k = 0; k < 3; k++) {
        const double s = (double)L[k] * sigma;
        expect += (double)V[i * 3 + k] * s * s * V[j * 3 + k];
      }
      const double got = cov[i * 3 + j] / N - (sum[i] / N) * (sum[j] / N);
      worst = std::max(worst, std::abs(got - expect));
      scale = std::max(scale, std::abs(expect));
    }
  }
  // Sample covariance of 100000 draws: relative sd about sqrt(2/N) = 0.45%; allow 3%.
  CHECK(worst < 0.03 * scale, "colour noise covariance off by %.4g (largest entry %.4g)", worst, scale);
  // The mean of 100000 draws of sd ~5.5: sd 0.02.
  CHECK(mean_worst < 0.1, "colour noise mean %.4g, expected 0", mean_worst);
  std::printf("pca noise: covariance within %.2f%% of V diag(lambda^2 sigma^2) V^T over %d images\n",
              100.0 * worst / scale, N);

  // Sigma 0 or no PCA: no noise at all.
  AugmentDraw a = augment_draw(8, 4, V, L, 0.0f, 1, 1, 1), b = augment_draw(8, 4, nullptr, nullptr, 0.1f, 1, 1, 1);
  CHECK(a.delta[0] == 0 && a.delta[1] == 0 && a.delta[2] == 0, "sigma 0 must give no colour noise");
  CHECK(b.delta[0] == 0 && b.delta[1] == 0 && b.delta[2] == 0, "no PCA must give no colour noise");
}

// Same (seed, counter, index) -> same bits with 1, 2 or 3 threads and when the batch is
// split with matching first_index; a new counter, seed or index changes the draws.
static void test_determinism() {
  const int N = 13, S = 20, C = 15;
  auto img = make_images(N, S, 5);
  auto mean = make_mean(S);
  const float V[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  const float L[3] = {20, 10, 5};
  const size_t per = (size_t)3 * C * C;
  auto run = [&](int threads, uint64_t seed, uint64_t counter) {
    omp_set_num_threads(threads);
    std::vector<float> out(N * per);
    augment_train(out.data(), img.data(), N, S, C, mean.data(), V, L, 0.1f, seed, counter, 50);
    return out;
  };
  auto one = run(1, 3, 10), two = run(2, 3, 10), three = run(3, 3, 10);
  CHECK(one == two && same_bits(one.data(), two.data(), one.size()), "1 and 2 threads differ");
  CHECK(same_bits(one.data(), three.data(), one.size()), "1 and 3 threads differ");
  CHECK(same_bits(one.data(), run(2, 3, 10).data(), one.size()), "a repeat call differs");
  CHECK(!same_bits(one.data(), run(2, 3, 11).data(), one.size()), "a new counter must change the output");
  CHECK(!same_bits(one.data(), run(2, 4, 10).data(), one.size()), "a new seed must change the output");
  // Images 5.. of the batch, augmented alone with first_index 55, are the same patches.
  std::vector<float> tail((N - 5) * per);
  augment_train(tail.data(), img.data() + (size_t)5 * S * S * 3, N - 5, S, C, mean.data(), V, L, 0.1f,
                3, 10, 55);
  CHECK(same_bits(tail.data(), one.data() + 5 * per, tail.size()), "a split batch augments differently");
  // Neighbouring images get different draws (the index reaches every image).
  int distinct = 0;
  for (int n = 1; n < 64; n++) {
    AugmentDraw a = augment_draw(256, 227, V, L, 0.1f, 3, 10, n - 1), b = augment_draw(256, 227, V, L, 0.1f, 3, 10, n);
    distinct += a.ox != b.ox || a.oy != b.oy || a.delta[0] != b.delta[0];
  }
  CHECK(distinct == 63, "only %d of 63 neighbouring images got different draws", distinct);
  // Centre and ten-crop do not depend on the thread count either.
  omp_set_num_threads(1);
  std::vector<float> c1(N * 10 * per), c2(N * 10 * per);
  augment_ten_crop(c1.data(), img.data(), N, S, C, mean.data());
  omp_set_num_threads(2);
  augment_ten_crop(c2.data(), img.data(), N, S, C, mean.data());
  CHECK(same_bits(c1.data(), c2.data(), c1.size()), "ten-crop differs between 1 and 2 threads");
}

static void expect_invalid(const char* what, const char* needle, void (*f)()) {
  try {
    f();
    CHECK(false, "%s: no exception", what);
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find(needle) != std::string::npos, "%s: message '%s' lacks '%s'", what,
          e.what(), needle);
  }
}

static void test_errors() {
  static float out[3 * 8 * 8];
  static uint8_t inp[8 * 8 * 3];
  static const float V[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, L[3] = {1, 1, 1};
  expect_invalid("crop > size", "crop size C must be between 1 and the image size 4, got 5",
                 [] { augment_center(out, inp, 1, 4, 5, nullptr); });
  expect_invalid("crop 0", "crop size C", [] { augment_ten_crop(out, inp, 1, 4, 0, nullptr); });
  expect_invalid("size 0", "image size S must be >= 1, got 0",
                 [] { augment_train(out, inp, 1, 0, 1, nullptr, nullptr, nullptr, 0, 0, 0, 0); });
  expect_invalid("N < 0", "batch size N must be >= 0, got -1", [] { augment_center(out, inp, -1, 4, 2, nullptr); });
  expect_invalid("null out", "must not be null", [] { augment_center(nullptr, inp, 1, 4, 2, nullptr); });
  expect_invalid("vectors alone", "pca_vectors and pca_values",
                 [] { augment_train(out, inp, 1, 8, 4, nullptr, V, nullptr, 0.1f, 0, 0, 0); });
  expect_invalid("negative sigma", "pca_sigma must be a finite number >= 0",
                 [] { augment_train(out, inp, 1, 8, 4, nullptr, V, L, -0.1f, 0, 0, 0); });
  expect_invalid("NaN sigma", "pca_sigma", [] { augment_train(out, inp, 1, 8, 4, nullptr, V, L, NAN, 0, 0, 0); });
  // N = 0 is an empty batch, not an error.
  augment_train(nullptr, nullptr, 0, 8, 4, nullptr, nullptr, nullptr, 0.1f, 0, 0, 0);
  CHECK(true, "an empty batch is accepted");
}

// The paper's size: 128 images of 256x256 to 227x227 patches with mean and colour noise.
static void bench() {
  const int N = 128, S = 256, C = 227;
  auto img = make_images(N, S, 99);
  auto mean = make_mean(S);
  const float V[9] = {-0.5675f, 0.7192f, 0.4009f, -0.5808f, -0.0045f, -0.8140f,
                      -0.5836f, -0.6948f, 0.4203f};
  const float L[3] = {55.46f, 4.794f, 1.148f};
  std::vector<float> out((size_t)N * 3 * C * C, 0.0f);  // touched once so page faults are not timed
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
      auto t0 = std::chrono::steady_clock::now();
      augment_train(out.data(), img.data(), N, S, C, mean.data(), V, L, 0.1f, 1, rep, 0);
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("augment_train N=%d S=%d C=%d: %.1f ms (%d thread%s, best of 5)\n", N, S, C, best, threads,
                threads > 1 ? "s" : "");
  }
}

int main() {
  set_compute_threads(0);
  test_center();
  test_ten_crop();
  test_train_crops();
  test_pca_noise();
  test_determinism();
  test_errors();
  bench();
  return check_summary();
}
