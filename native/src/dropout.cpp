// Inverted dropout with a counter-based mask: the mask of element i at training step t is
// a pure function of (seed, layer stream, t, i), so the RNG state that a checkpoint must
// keep is only the seed and the step counter.
#include "layers.h"
#include "rng.h"

namespace alexnet {

void dropout_forward(float* out, float* mask, const float* inp, int64_t n, float p, uint64_t seed,
                     uint64_t stream, uint64_t counter) {
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    mask[i] = rng_uniform(seed, stream, counter, (uint64_t)i) >= p ? keep_scale : 0.0f;
    out[i] = inp[i] * mask[i];
  }
}

void dropout_backward(float* dinp, const float* dout, const float* mask, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) dinp[i] = dout[i] * mask[i];
}

}  // namespace alexnet
