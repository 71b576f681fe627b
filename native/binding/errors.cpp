#include "errors.h"

namespace alexnet {
namespace {

Napi::Error with_code(Napi::Error err, ErrorCode code) {
  err.Set("code", Napi::String::New(err.Env(), error_code_name(code)));
  return err;
}

}  // namespace

Napi::Error js_error(Napi::Env env, ErrorCode code, const std::string& message) {
  return with_code(Napi::Error::New(env, message), code);
}

Napi::Error js_error(Napi::Env env, const std::exception& e, const std::string& prefix) {
  return js_error(env, error_code_of(e), prefix + e.what());
}

Napi::Error type_error(Napi::Env env, const std::string& message) {
  return with_code(Napi::TypeError::New(env, message), ErrorCode::BadArgument);
}

Napi::Error range_error(Napi::Env env, const std::string& message) {
  return with_code(Napi::RangeError::New(env, message), ErrorCode::BadArgument);
}

}  // namespace alexnet
