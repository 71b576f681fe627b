// A minimal assertion harness for the standalone C++ tests: every CHECK counts, a failed
// one prints where and why, and main() returns non-zero when anything failed.
#pragma once
#include <cmath>
#include <cstdio>
#include <vector>

static int g_passed = 0, g_failed = 0;

#define CHECK(cond, ...)                                          \
  do {                                                            \
    if (cond) {                                                   \
      g_passed++;                                                 \
    } else {                                                      \
      g_failed++;                                                 \
      std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);   \
      std::fprintf(stderr, __VA_ARGS__);                          \
      std::fprintf(stderr, "\n");                                 \
    }                                                             \
  } while (0)

inline int check_summary() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}

// Relative distance of two gradient vectors: |a-b| / max(|a|+|b|, tiny), in the 2-norm.
inline double rel_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += a[i] * a[i] + b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}
