// The weight-gradient sums of the per-image convolutions (conv.cpp's per-image way and
// winograd.cpp) without a dependence on the thread count: the batch is split into a fixed
// number of slots (contiguous runs of images); a slot sums its images in order into its own
// buffer, whichever thread runs it; then the slots are added in order.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "layers.h"

namespace alexnet {

// A constant, so the sums' order does not depend on the thread count (up to 16 threads share
// the work evenly).
constexpr int kGradSlots = 16;

inline int grad_slots(int N) { return std::min(N, kGradSlots); }

// The images [first, last) of slot `slot` of `slots`.
inline int slot_first(int slot, int slots, int N) { return (int)((int64_t)slot * N / slots); }

// sum(x[0:n]) in a fixed order that vectorizes: 16 float lanes (lane j sums every 16th
// value from j), then the lanes and the tail in double. A strict left-to-right double sum
// is one long dependency chain: on conv2 of alexnet-32 it cost more than its SGEMMs.
inline double sum_in_lanes(const float* x, int64_t n) {
  constexpr int L = 16;
  float lanes[L] = {};
  int64_t p = 0;
  for (; p + L <= n; p += L)
    for (int j = 0; j < L; j++) lanes[j] += x[p + j];
  double sum = 0.0;
  for (int j = 0; j < L; j++) sum += lanes[j];
  for (; p < n; p++) sum += x[p];
  return sum;
}

// Sizes the slot buffers: scratch.grad_slots (slots, wsize) and scratch.bias_slots (slots, O),
// the latter zeroed.
inline void size_grad_slots(Scratch& scratch, int slots, int64_t wsize, int O) {
  scratch.grad_slots.resize((size_t)slots * wsize);
  scratch.bias_slots.assign((size_t)slots * O, 0.0);
}

// dweight (wsize) and dbias (O) = the slots added in order. Call inside a parallel region
// (every thread): the weight sum is shared out, the bias sum done by one thread.
inline void add_grad_slots(float* dweight, float* dbias, const Scratch& scratch, int slots,
                           int64_t wsize, int O) {
#pragma omp for schedule(static)
  for (int64_t i = 0; i < wsize; i++) {
    float sum = scratch.grad_slots[i];
    for (int slot = 1; slot < slots; slot++) sum += scratch.grad_slots[slot * wsize + i];
    dweight[i] = sum;
  }
#pragma omp single
  for (int o = 0; o < O; o++) {
    double sum = 0.0;
    for (int slot = 0; slot < slots; slot++) sum += scratch.bias_slots[(int64_t)slot * O + o];
    dbias[o] = (float)sum;
  }
}

}  // namespace alexnet
