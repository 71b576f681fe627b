// C++ failures -> JS Errors that carry `code` (error.h's names: "BAD_ARGUMENT",
// "NON_FINITE_LOSS", ...). Every error the binding throws or rejects with is made here, so
// TypeScript matches a failure by `err.code`, never by its message.
#pragma once
#include <napi.h>

#include <exception>
#include <string>

#include "error.h"

namespace alexnet {

// The message for a C++ exception that is not a std::exception.
inline constexpr const char* kUnknownException = "the native library threw an exception of unknown type";

Napi::Error js_error(Napi::Env env, ErrorCode code, const std::string& message);
// e's message (after prefix) and code (error_code_of).
Napi::Error js_error(Napi::Env env, const std::exception& e, const std::string& prefix = "");
// The binding's own argument checks: a TypeError or RangeError with code BAD_ARGUMENT.
Napi::Error type_error(Napi::Env env, const std::string& message);
Napi::Error range_error(Napi::Env env, const std::string& message);

// Runs f() for a synchronous entry point, rethrowing a C++ exception as the JS Error with
// its code (a Napi::Error passes through as it is).
template <typename F>
auto with_js_errors(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw js_error(env, e);
  } catch (...) {
    throw js_error(env, ErrorCode::Internal, kUnknownException);
  }
}

}  // namespace alexnet
