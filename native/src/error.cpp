#include "error.h"

#include <new>

namespace alexnet {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::BadArgument: return "BAD_ARGUMENT";
    case ErrorCode::BadState: return "BAD_STATE";
    case ErrorCode::NonFiniteLoss: return "NON_FINITE_LOSS";
    case ErrorCode::CudaUnavailable: return "CUDA_UNAVAILABLE";
    case ErrorCode::CudaError: return "CUDA_ERROR";
    case ErrorCode::OutOfMemory: return "OUT_OF_MEMORY";
    case ErrorCode::Internal: break;
  }
  return "INTERNAL";
}

ErrorCode error_code_from_int(int value) {
  return value >= (int)ErrorCode::BadArgument && value <= (int)ErrorCode::Internal
             ? static_cast<ErrorCode>(value)
             : ErrorCode::Internal;
}

// Errors thrown in libalexnet_cuda.so are matched here too: libstdc++ compares the type
// by name, so its hidden copy of Error's type info still matches this one.
ErrorCode error_code_of(const std::exception& e) {
  if (const auto* err = dynamic_cast<const Error*>(&e)) return err->code();
  if (dynamic_cast<const std::invalid_argument*>(&e)) return ErrorCode::BadArgument;
  if (dynamic_cast<const std::bad_alloc*>(&e)) return ErrorCode::OutOfMemory;
  return ErrorCode::Internal;
}

}  // namespace alexnet
