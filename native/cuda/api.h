// The C entry points of libalexnet_cuda.so, which the addon looks up with dlsym
// (binding/cuda_loader.cpp). Plain C++, no CUDA headers: the addon includes this without
// the CUDA toolkit. No exception crosses them: each catches everything and reports a
// failure as a return value and a message.
#pragma once
#include <cstddef>
#include <cstdint>

#include "backend.h"

extern "C" {
// Creates a CudaNetwork in *out (released with `delete`). Returns 0, or on failure the
// alexnet::ErrorCode of what failed (error.h: BAD_ARGUMENT for bad options or config,
// CUDA_UNAVAILABLE without a device, ...) with the message in err.
__attribute__((visibility("default"))) int alexnet_cuda_create(const alexnet::NetConfig* cfg, uint64_t seed,
                                                               const alexnet::DeviceOptions* options,
                                                               alexnet::NetworkBackend** out, char* err,
                                                               size_t err_len);
// The number of CUDA devices, naming them in info ("0: NVIDIA H100 80GB HBM3 (sm_90); ...");
// -1 with the reason in info when CUDA cannot count them.
__attribute__((visibility("default"))) int alexnet_cuda_device_count(char* info, size_t info_len);
}

using alexnet_cuda_create_fn = decltype(&alexnet_cuda_create);
using alexnet_cuda_device_count_fn = decltype(&alexnet_cuda_device_count);
#define ALEXNET_CUDA_CREATE_SYMBOL "alexnet_cuda_create"
#define ALEXNET_CUDA_DEVICE_COUNT_SYMBOL "alexnet_cuda_device_count"
