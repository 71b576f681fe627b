// The library's errors carry a code, so callers match a failure by what it is, never by
// its message: the binding sets it as `err.code` on the JS Error, and the CUDA backend's
// C entry points return it. What a code means, and where it comes from:
//   BAD_ARGUMENT      a bad size, label, config or option: std::invalid_argument (thrown
//                     as that type, which callers catch by type) or the binding's checks
//   BAD_STATE         a call out of order (backward before a forward with labels; an
//                     operation while the network is busy with another)
//   NON_FINITE_LOSS   a training step's loss was NaN or Inf: nothing was updated
//   CUDA_UNAVAILABLE  CUDA asked for, but not built, not loadable, or no device
//   CUDA_ERROR        a CUDA runtime or cuBLAS call or a kernel launch failed
//   OUT_OF_MEMORY     host (std::bad_alloc) or device memory ran out
//   INTERNAL          a broken internal assumption, or an exception of any other type
#pragma once
#include <exception>
#include <stdexcept>
#include <string>

namespace alexnet {

// The values cross the CUDA backend's C boundary (its entry points return them; 0 is
// success): append new codes, never renumber.
enum class ErrorCode : int {
  BadArgument = 1,
  BadState = 2,
  NonFiniteLoss = 3,
  CudaUnavailable = 4,
  CudaError = 5,
  OutOfMemory = 6,
  Internal = 7,
};

// "BAD_ARGUMENT", "NON_FINITE_LOSS", ... ("INTERNAL" for a value outside the enum).
const char* error_code_name(ErrorCode code);
// The code of a value that crossed a C boundary; INTERNAL when it is not one.
ErrorCode error_code_from_int(int value);
// Error's own code; BAD_ARGUMENT for std::invalid_argument, OUT_OF_MEMORY for
// std::bad_alloc, INTERNAL for anything else.
ErrorCode error_code_of(const std::exception& e);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace alexnet
