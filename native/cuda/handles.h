// Owned CUDA streams, events and cuBLAS handles: each destroys itself on the device it was
// created on, so whatever a construction created before it failed is released by the
// unwinding (nothing leaks when CudaNetwork's setup throws halfway). Converts to the raw
// handle, so launchers and CUDA calls take it as they are.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <utility>

#include "cuda_check.h"

namespace alexnet {
namespace cuda {

// The current device.
inline int current_device() {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

// Runs release() with `device` current, then makes the caller's device current again.
// Never throws (for destructors): a failed release leaks.
template <typename Release>
void release_on_device(int device, Release release) noexcept {
  int current = 0;
  if (cudaGetDevice(&current) == cudaSuccess && current != device) {
    cudaSetDevice(device);
    release();
    cudaSetDevice(current);
  } else {
    release();
  }
}

// One handle of type H, destroyed with Destroy(h) on the device current at its creation.
template <typename H, auto Destroy>
class CudaHandle {
 public:
  CudaHandle() = default;
  CudaHandle(H h, int device) : h_(h), device_(device) {}  // takes ownership of h
  CudaHandle(const CudaHandle&) = delete;
  CudaHandle& operator=(const CudaHandle&) = delete;
  CudaHandle(CudaHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)), device_(o.device_) {}
  CudaHandle& operator=(CudaHandle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
      device_ = o.device_;
    }
    return *this;
  }
  ~CudaHandle() { reset(); }

  H get() const { return h_; }
  operator H() const { return h_; }
  void reset() noexcept {
    if (!h_) return;
    release_on_device(device_, [h = h_] { Destroy(h); });
    h_ = nullptr;
  }

 private:
  H h_ = nullptr;
  int device_ = 0;
};

using Stream = CudaHandle<cudaStream_t, cudaStreamDestroy>;
using Event = CudaHandle<cudaEvent_t, cudaEventDestroy>;
using BlasHandle = CudaHandle<cublasHandle_t, cublasDestroy>;

// Each created on the current device.
inline Stream create_stream(unsigned flags = cudaStreamNonBlocking) {
  const int device = current_device();
  cudaStream_t s = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, flags));
  return Stream(s, device);
}
inline Event create_event(unsigned flags = cudaEventDisableTiming) {
  const int device = current_device();
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, flags));
  return Event(e, device);
}
inline BlasHandle create_blas() {
  const int device = current_device();
  cublasHandle_t h = nullptr;
  CUBLAS_CHECK(cublasCreate(&h));
  return BlasHandle(h, device);
}

}  // namespace cuda
}  // namespace alexnet
