#include "args.h"

namespace alexnet {

int int_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw type_error(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

double number_field(const Napi::Object& o, const char* key, double fallback, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw type_error(o.Env(), (where.empty() ? "" : where + ".") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

uint64_t uint64_value(Napi::Value v, const std::string& name) {
  if (!v.IsBigInt()) throw type_error(v.Env(), name + " must be a bigint");
  bool lossless = true;
  const uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw range_error(v.Env(), name + " must be in [0, 2^64)");
  return x;
}

}  // namespace alexnet
