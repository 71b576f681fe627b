// One knob for both thread pools: OpenBLAS (the OpenMP build, so it shares libgomp's
// pool with our loops instead of two pools spinning against each other) and OpenMP.
#include <omp.h>

#include <algorithm>
#include <thread>

#include "layers.h"

extern "C" void openblas_set_num_threads(int);

namespace alexnet {

int default_compute_threads() {
  return std::max(1, (int)std::thread::hardware_concurrency());
}

void set_compute_threads(int threads) {
  const int t = threads > 0 ? threads : default_compute_threads();
  omp_set_num_threads(t);
  openblas_set_num_threads(t);
}

}  // namespace alexnet
