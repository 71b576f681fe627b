// Counter-based random numbers: every draw is a pure function of (seed, stream,
// counter, index). No sequential state means the network's whole RNG state is two
// integers (seed, step counter) that save and load exactly, draws do not depend on
// how the work is split across threads, and a CUDA kernel can reproduce them bit for bit.
#pragma once
#include <cmath>
#include <cstdint>

namespace alexnet {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// One 64-bit draw for element `index` of stream `stream` at step `counter`.
inline uint64_t rng_draw(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t index) {
  uint64_t key = splitmix64(seed ^ splitmix64(stream + 0x632be59bd9b4e019ULL));
  key = splitmix64(key ^ counter);
  return splitmix64(key ^ index);
}

// Uniform float in [0, 1) with 24 bits of randomness.
inline float rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t index) {
  return (float)(rng_draw(seed, stream, counter, index) >> 40) * (1.0f / 16777216.0f);
}

// Standard normal by Box-Muller over two independent draws (element pairs 2i, 2i+1).
inline double rng_normal(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t index) {
  double u1 = ((double)(rng_draw(seed, stream, counter, 2 * index) >> 11) + 0.5) * 0x1.0p-53;
  double u2 = (double)(rng_draw(seed, stream, counter, 2 * index + 1) >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Streams keep draws of different purposes independent.
enum RngStream : uint64_t {
  RNG_STREAM_INIT = 1,        // + parameter index
  RNG_STREAM_DROPOUT = 1000,  // + layer index
  RNG_STREAM_AUGMENT = 2000,  // + 0 crop and flip, + 1 colour noise (augment.h)
};

}  // namespace alexnet
