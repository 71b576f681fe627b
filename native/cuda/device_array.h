// An owned, growable device allocation on one device (freed on that device).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "cuda_check.h"
#include "handles.h"

namespace alexnet {
namespace cuda {

template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept { swap(o); }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    swap(o);
    return *this;
  }
  ~DeviceArray() { release(); }

  // Grows on the current device when needed; keeps the allocation when shrinking.
  // Contents are not preserved across a reallocation.
  void resize(size_t n) {
    if (n > cap_) {
      if (p_) CUDA_CHECK(cudaDeviceSynchronize());  // queued work may still read the old buffer
      release();
      device_ = current_device();
      CUDA_CHECK(cudaMalloc(&p_, (n ? n : 1) * sizeof(T)));
      cap_ = n;
    }
    n_ = n;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }
  int device() const { return device_; }

  void release() {
    if (!p_) return;
    release_on_device(device_, [p = p_] { cudaFree(p); });
    p_ = nullptr;
    n_ = cap_ = 0;
  }

 private:
  void swap(DeviceArray& o) {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(cap_, o.cap_);
    std::swap(device_, o.device_);
  }
  T* p_ = nullptr;
  size_t n_ = 0, cap_ = 0;
  int device_ = 0;
};

inline unsigned blocks_for(int64_t n, int threads = 256) {
  return (unsigned)((n + threads - 1) / threads);
}

}  // namespace cuda
}  // namespace alexnet
