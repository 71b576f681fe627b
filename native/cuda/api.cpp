// The C entry points of libalexnet_cuda.so (api.h), for the addon's dlopen. No exception
// crosses them: a failure comes back as its error code and a message.
#include "api.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <exception>
#include <string>

#include "cuda_network.h"

namespace {
void write_message(char* dst, size_t len, const std::string& msg) {
  if (dst && len) std::snprintf(dst, len, "%s", msg.c_str());
}
}  // namespace

extern "C" int alexnet_cuda_create(const alexnet::NetConfig* cfg, uint64_t seed,
                                   const alexnet::DeviceOptions* options, alexnet::NetworkBackend** out,
                                   char* err, size_t err_len) {
  try {
    *out = new alexnet::cuda::CudaNetwork(*cfg, seed, *options);
    return 0;
  } catch (const std::exception& e) {
    write_message(err, err_len, e.what());
    return (int)alexnet::error_code_of(e);
  } catch (...) {
    write_message(err, err_len, "creating the CUDA network threw an exception of unknown type");
    return (int)alexnet::ErrorCode::Internal;
  }
}

extern "C" int alexnet_cuda_device_count(char* info, size_t info_len) {
  try {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      cudaGetLastError();
      write_message(info, info_len, cudaGetErrorString(e));
      return -1;
    }
    std::string names;
    for (int d = 0; d < n; d++) {
      cudaDeviceProp prop;
      if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) continue;
      names += (names.empty() ? "" : "; ") + std::to_string(d) + ": " + prop.name + " (sm_" +
               std::to_string(prop.major) + std::to_string(prop.minor) + ")";
    }
    write_message(info, info_len, names);
    return n;
  } catch (...) {  // only std::bad_alloc from the names
    write_message(info, info_len, "listing the CUDA devices threw an exception");
    return -1;
  }
}
