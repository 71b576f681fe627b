// Timing helpers shared by the standalone benchmarks (bench_network, bench_cuda).
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

using bench_clock = std::chrono::steady_clock;

inline double seconds_since(bench_clock::time_point t0) {
  return std::chrono::duration<double>(bench_clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
