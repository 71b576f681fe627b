// Error checks for the CUDA backend: every CUDA runtime and cuBLAS call goes through
// CUDA_CHECK / CUBLAS_CHECK, and every kernel launch through LAUNCH_CHECK. A failure
// throws alexnet::Error (CUDA_ERROR; OUT_OF_MEMORY when an allocation failed; INTERNAL for
// a failed CUDA_ASSERT) naming the file, the line and the call (never exit()), so the
// addon rejects the promise of the operation that failed.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "error.h"

namespace alexnet {
namespace cuda {

[[noreturn]] inline void throw_cuda(ErrorCode code, const char* what, const char* detail, const char* file,
                                    int line) {
  throw Error(code, std::string("CUDA error at ") + file + ":" + std::to_string(line) + ": " + what + ": " +
                        detail);
}

inline ErrorCode error_code_for(cudaError_t e) {
  return e == cudaErrorMemoryAllocation ? ErrorCode::OutOfMemory : ErrorCode::CudaError;
}
inline ErrorCode error_code_for(cublasStatus_t s) {
  return s == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::OutOfMemory : ErrorCode::CudaError;
}

inline const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

}  // namespace cuda
}  // namespace alexnet

#define CUDA_CHECK(call)                                                                   \
  do {                                                                                     \
    const cudaError_t err_ = (call);                                                       \
    if (err_ != cudaSuccess)                                                               \
      ::alexnet::cuda::throw_cuda(::alexnet::cuda::error_code_for(err_), #call,            \
                                  cudaGetErrorString(err_), __FILE__, __LINE__);           \
  } while (0)

#define CUBLAS_CHECK(call)                                                                 \
  do {                                                                                     \
    const cublasStatus_t st_ = (call);                                                     \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                      \
      ::alexnet::cuda::throw_cuda(::alexnet::cuda::error_code_for(st_), #call,             \
                                  ::alexnet::cuda::cublas_status_name(st_), __FILE__, __LINE__); \
  } while (0)

// After a <<<...>>> launch: a bad configuration shows up here, not at the next sync.
#define LAUNCH_CHECK(kernel_name)                                                          \
  do {                                                                                     \
    const cudaError_t err_ = cudaGetLastError();                                           \
    if (err_ != cudaSuccess)                                                               \
      ::alexnet::cuda::throw_cuda(::alexnet::cuda::error_code_for(err_), "launch " kernel_name, \
                                  cudaGetErrorString(err_), __FILE__, __LINE__);           \
  } while (0)

// Sizes a launcher asserts before launching (an internal error, not a user error).
#define CUDA_ASSERT(cond)                                                                  \
  do {                                                                                     \
    if (!(cond))                                                                           \
      ::alexnet::cuda::throw_cuda(::alexnet::ErrorCode::Internal, "assertion failed", #cond, \
                                  __FILE__, __LINE__);                                     \
  } while (0)
