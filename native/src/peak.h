// What this machine's cores can do, measured: the ceiling the per-layer figures of
// `alexnet bench` are shown against (a roofline's compute roof).
#pragma once

namespace alexnet {

struct PeakFlops {
  double fma_gflops;    // independent fp32 FMA chains in registers on every thread: the core's limit
  double sgemm_gflops;  // one large SGEMM (1536^3) on all threads: what a GEMM reaches here
};

// About a third of a second; best of three rounds each after a warm-up. threads <= 0: all cores.
PeakFlops measure_peak_flops(int threads);

}  // namespace alexnet
