// Unpacking the binding's JS arguments. Each helper checks the type (and a typed array's
// length) and throws a TypeError or RangeError with code BAD_ARGUMENT naming the argument.
// TypeScript validates first with the friendly messages (native/index.ts, augment.ts);
// these keep C++ memory-safe when a caller bypasses it.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "errors.h"

namespace alexnet {

// The JS typed array of elements T: its type, its name with the article, and what its
// elements are called in a length message.
struct TypedArrayKind {
  napi_typedarray_type type;
  const char* name;
  const char* elements;
};
template <typename T>
constexpr TypedArrayKind typed_array_kind() {
  if constexpr (std::is_same_v<T, uint8_t>) return {napi_uint8_array, "a Uint8Array", "bytes"};
  else if constexpr (std::is_same_v<T, int32_t>) return {napi_int32_array, "an Int32Array", "integers"};
  else if constexpr (std::is_same_v<T, float>) return {napi_float32_array, "a Float32Array", "floats"};
  else {
    static_assert(std::is_same_v<T, double>, "no JS typed array of this element type");
    return {napi_float64_array, "a Float64Array", "numbers"};
  }
}

// v as a typed array of T ("<name> must be a Float32Array").
template <typename T>
Napi::TypedArrayOf<T> typed_array(Napi::Value v, const std::string& name) {
  constexpr TypedArrayKind kind = typed_array_kind<T>();
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kind.type)
    throw type_error(v.Env(), name + " must be " + kind.name);
  return v.As<Napi::TypedArrayOf<T>>();
}

// ... of exactly `length` elements ("<name> must hold <how>N floats, has M"; how: the
// length's formula, such as "n*size*size*3 = ").
template <typename T>
Napi::TypedArrayOf<T> typed_array(Napi::Value v, const std::string& name, size_t length,
                                  const std::string& how = "") {
  Napi::TypedArrayOf<T> a = typed_array<T>(v, name);
  if (a.ElementLength() != length)
    throw range_error(v.Env(), name + " must hold " + how + std::to_string(length) + " " +
                                   typed_array_kind<T>().elements + ", has " + std::to_string(a.ElementLength()));
  return a;
}

// An optional typed-array field of exactly `length` elements; empty when undefined or null.
template <typename T>
Napi::TypedArrayOf<T> optional_typed_array(const Napi::Object& o, const char* key, size_t length) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return Napi::TypedArrayOf<T>();
  return typed_array<T>(v, key, length);
}

// The data of an optional typed array, or null.
template <typename T>
const T* data_or_null(const Napi::TypedArrayOf<T>& a) {
  return a.IsEmpty() ? nullptr : a.Data();
}

// info[i] as an int ("<name> must be a number").
int int_arg(const Napi::CallbackInfo& info, size_t i, const char* name);
// o[key] as a number, or fallback when undefined ("<where>.<key> must be a number").
double number_field(const Napi::Object& o, const char* key, double fallback, const std::string& where = "");
// v as a bigint in [0, 2^64) ("<name> must be a bigint").
uint64_t uint64_value(Napi::Value v, const std::string& name);

}  // namespace alexnet
