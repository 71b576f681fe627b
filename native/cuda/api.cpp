// The C entry points of libalexnet_cuda.so (see backend.h), for the addon's dlopen. No
// exception crosses them: failures come back as a return code and a message.
#include <cuda_runtime.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "cuda_network.h"

namespace {
void write_message(char* dst, size_t len, const std::string& msg) {
  if (dst && len) std::snprintf(dst, len, "%s", msg.c_str());
}
}  // namespace

extern "C" __attribute__((visibility("default"))) int alexnet_cuda_create(
    const alexnet::NetConfig* cfg, uint64_t seed, const alexnet::DeviceOptions* options,
    alexnet::NetworkBackend** out, char* err, size_t err_len) {
  try {
    *out = new alexnet::cuda::CudaNetwork(*cfg, seed, *options);
    return 0;
  } catch (const std::invalid_argument& e) {
    write_message(err, err_len, e.what());
    return 1;
  } catch (const std::exception& e) {
    write_message(err, err_len, e.what());
    return 2;
  }
}

extern "C" __attribute__((visibility("default"))) int alexnet_cuda_device_count(char* info, size_t info_len) {
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
}
