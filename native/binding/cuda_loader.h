// Loads the CUDA backend (libalexnet_cuda.so, built next to alexnet.node when nvcc was
// found) with dlopen, the first time a network asks for device 'cuda'. The addon itself
// never links libcudart or libcublas, so it loads on machines without them.
#pragma once
#include <memory>
#include <string>

#include "backend.h"

namespace alexnet {

// Whether this build compiled the CUDA backend.
bool cuda_built();
// The library's path (ALEXNET_CUDA_LIBRARY overrides it).
std::string cuda_library_path();

// Creates a network on CUDA. Throws alexnet::Error with the backend's code: BAD_ARGUMENT
// for bad options or config, CUDA_UNAVAILABLE when the backend is not built, cannot load,
// or finds no device (the message says what to do), CUDA_ERROR, OUT_OF_MEMORY, ...
std::unique_ptr<NetworkBackend> create_cuda_network(const NetConfig& cfg, uint64_t seed,
                                                    const DeviceOptions& options);

struct CudaDevices {
  bool loaded = false;  // the library loaded
  int count = 0;        // devices visible (0 when none or on error)
  std::string info;     // device names, or why there are none
};
CudaDevices cuda_devices();

}  // namespace alexnet
