// augmentTrain / augmentCenter / augmentTenCrop, and accumulateImageStats (the data
// side's other native work, image_stats.h). Arguments are unpacked and checked for
// memory safety here (types, buffer lengths against the sizes; native/augment.ts gives
// the friendly messages first); the sizes themselves are checked by augment.h, whose
// std::invalid_argument rejects the promise. The output is either the caller's
// Float32Array (opts.out: reused across batches, no allocation at all) or allocated in
// Execute (off the event loop, uninitialized: every element is written) and handed to JS
// as an external ArrayBuffer that frees it; either way nothing is zero-filled or copied.
// Reuse matters at the paper's size: a fresh 79 MB buffer costs more in page faults
// than the augmentation itself.
#include "augment_wrap.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include "augment.h"
#include "image_stats.h"
#include "layers.h"

namespace alexnet {
namespace {

class AugmentWorker : public Napi::AsyncWorker {
 public:
  // work(out) fills out (out_floats floats; null when there is nothing to write or the
  // sizes are invalid, in which case work throws the size error). `given` is the
  // caller's output array (empty: allocate one).
  using Work = std::function<void(float* out)>;
  AugmentWorker(Napi::Env env, size_t out_floats, bool allocate, int threads,
                Napi::Float32Array given, Work work)
      : Napi::AsyncWorker(env, "alexnet:augment"), deferred_(Napi::Promise::Deferred::New(env)),
        out_floats_(out_floats), allocate_(allocate), threads_(threads), work_(std::move(work)) {
    if (!given.IsEmpty()) {
      given_ = given.Data();
      given_ref_ = Napi::Persistent(static_cast<Napi::Object>(given));
    }
  }
  // Keeps an input buffer alive (and its memory in place) while Execute reads it.
  void Keep(Napi::Value v) {
    if (!v.IsEmpty() && v.IsObject()) refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      // OpenMP's thread count is per calling thread: set it on this libuv thread.
      omp_set_num_threads(threads_ > 0 ? threads_ : default_compute_threads());
      if (given_) {
        work_(given_);
        return;
      }
      if (allocate_ && out_floats_ > 0) out_.reset(new float[out_floats_]);
      work_(out_.get());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (given_) {
      deferred_.Resolve(given_ref_.Value());
      return;
    }
    if (!out_) {
      deferred_.Resolve(Napi::Float32Array::New(env, 0));
      return;
    }
    float* data = out_.release();
    Napi::ArrayBuffer buf;
    try {
      buf = Napi::ArrayBuffer::New(env, data, out_floats_ * sizeof(float),
                                   [](Napi::Env, void* p) { delete[] static_cast<float*>(p); });
    } catch (const Napi::Error& e) {
      delete[] data;
      deferred_.Reject(e.Value());
      return;
    }
    deferred_.Resolve(Napi::Float32Array::New(env, out_floats_, buf, 0));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> refs_;
  float* given_ = nullptr;
  Napi::ObjectReference given_ref_;
  size_t out_floats_;
  bool allocate_;
  int threads_;
  Work work_;
  std::unique_ptr<float[]> out_;
};

int int_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

uint64_t bigint_field(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsBigInt()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a bigint");
  bool lossless = true;
  const uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(o.Env(), std::string(key) + " must be in [0, 2^64)");
  return x;
}

double number_field(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

// An optional Float32Array field of exactly `length` floats; null when absent.
Napi::Float32Array floats_field(const Napi::Object& o, const char* key, size_t length) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return Napi::Float32Array();
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a Float32Array");
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  if (a.ElementLength() != length)
    throw Napi::RangeError::New(o.Env(), std::string(key) + " must hold " + std::to_string(length) +
                                             " floats, has " + std::to_string(a.ElementLength()));
  return a;
}

// The arguments every augment function shares: (pixels, n, size, crop, opts).
struct Common {
  Napi::Uint8Array pixels;
  Napi::Object opts;
  Napi::Float32Array mean;
  int n = 0, size = 0, crop = 0, threads = 0;
  bool sizes_ok = false;  // else the call runs anyway and augment.h throws the size error
};

Common common_args(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Common c;
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "pixels must be a Uint8Array");
  c.pixels = info[0].As<Napi::Uint8Array>();
  c.n = int_arg(info, 1, "n");
  c.size = int_arg(info, 2, "size");
  c.crop = int_arg(info, 3, "crop");
  c.opts = info[4].IsObject() ? info[4].As<Napi::Object>() : Napi::Object::New(env);
  c.threads = (int)number_field(c.opts, "threads", 0);
  c.sizes_ok = c.n >= 0 && c.size >= 1 && c.crop >= 1 && c.crop <= c.size;
  if (c.sizes_ok) {
    const size_t want = (size_t)c.n * c.size * c.size * 3;
    if (c.pixels.ElementLength() != want)
      throw Napi::RangeError::New(env, "pixels must hold n*size*size*3 = " + std::to_string(want) +
                                           " bytes, has " + std::to_string(c.pixels.ElementLength()));
    c.mean = floats_field(c.opts, "mean", (size_t)c.size * c.size * 3);
  }
  return c;
}

// opts.out when given: a Float32Array of exactly the output's length.
Napi::Float32Array out_field(const Common& c, size_t floats) {
  return c.sizes_ok && floats > 0 ? floats_field(c.opts, "out", floats) : Napi::Float32Array();
}

const float* data_or_null(const Napi::Float32Array& a) { return a.IsEmpty() ? nullptr : a.Data(); }

using TestCrop = void (*)(float*, const uint8_t*, int, int, int, const float*);

Napi::Value test_crop(const Napi::CallbackInfo& info, TestCrop fn, size_t patches_per_image) {
  Common c = common_args(info);
  const uint8_t* pixels = c.pixels.Data();
  const float* mean = data_or_null(c.mean);
  const int n = c.n, size = c.size, crop = c.crop;
  const size_t floats = c.sizes_ok ? (size_t)n * patches_per_image * 3 * crop * crop : 0;
  auto* w = new AugmentWorker(info.Env(), floats, c.sizes_ok, c.threads, out_field(c, floats),
                              [=](float* out) { fn(out, pixels, n, size, crop, mean); });
  w->Keep(c.pixels);
  w->Keep(c.mean);
  w->Queue();
  return w->Promise();
}

}  // namespace

Napi::Value AugmentTrain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[4].IsObject()) throw Napi::TypeError::New(env, "opts must be an object {seed, counter, ...}");
  Common c = common_args(info);
  // 12 floats: copied, so only the pixels and the mean need keeping.
  Napi::Float32Array vectors = floats_field(c.opts, "pcaVectors", 9), values = floats_field(c.opts, "pcaValues", 3);
  const bool pca = !vectors.IsEmpty() && !values.IsEmpty();
  if (vectors.IsEmpty() != values.IsEmpty())
    throw Napi::TypeError::New(env, "pcaVectors and pcaValues must be given together (or neither)");
  std::array<float, 9> v{};
  std::array<float, 3> l{};
  if (pca) {
    std::copy(vectors.Data(), vectors.Data() + 9, v.begin());
    std::copy(values.Data(), values.Data() + 3, l.begin());
  }
  const float sigma = (float)number_field(c.opts, "pcaSigma", 0.1);
  const uint64_t seed = bigint_field(c.opts, "seed"), counter = bigint_field(c.opts, "counter");
  const double first = number_field(c.opts, "firstIndex", 0);
  if (!(first >= 0 && first <= 9007199254740991.0))
    throw Napi::RangeError::New(env, "firstIndex must be an integer in [0, 2^53)");
  const uint64_t first_index = (uint64_t)first;
  const uint8_t* pixels = c.pixels.Data();
  const float* mean = data_or_null(c.mean);
  const int n = c.n, size = c.size, crop = c.crop;
  const size_t floats = c.sizes_ok ? (size_t)n * 3 * crop * crop : 0;
  auto* w = new AugmentWorker(env, floats, c.sizes_ok, c.threads, out_field(c, floats), [=](float* out) {
    augment_train(out, pixels, n, size, crop, mean, pca ? v.data() : nullptr, pca ? l.data() : nullptr,
                  sigma, seed, counter, first_index);
  });
  w->Keep(c.pixels);
  w->Keep(c.mean);
  w->Queue();
  return w->Promise();
}

Napi::Value AccumulateImageStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "pixels must be a Uint8Array");
  Napi::Uint8Array pixels = info[0].As<Napi::Uint8Array>();
  const int n = int_arg(info, 1, "n"), height = int_arg(info, 2, "height"), width = int_arg(info, 3, "width");
  if (n < 0 || height < 1 || width < 1) throw Napi::RangeError::New(env, "n must be >= 0, height and width >= 1");
  const size_t want = (size_t)n * height * width * 3;
  if (pixels.ElementLength() != want)
    throw Napi::RangeError::New(env, "pixels must hold n*height*width*3 = " + std::to_string(want) +
                                         " bytes, has " + std::to_string(pixels.ElementLength()));
  auto float64s = [&](size_t i, const char* name, size_t length) {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(env, std::string(name) + " must be a Float64Array");
    Napi::Float64Array a = info[i].As<Napi::Float64Array>();
    if (a.ElementLength() != length)
      throw Napi::RangeError::New(env, std::string(name) + " must hold " + std::to_string(length) +
                                           " numbers, has " + std::to_string(a.ElementLength()));
    return a;
  };
  Napi::Float64Array pixel_sum = float64s(4, "pixelSum", (size_t)height * width * 3),
                     rgb_sum = float64s(5, "rgbSum", 3), rgb_outer_sum = float64s(6, "rgbOuterSum", 9);
  const uint8_t* px = pixels.Data();
  double *ps = pixel_sum.Data(), *rs = rgb_sum.Data(), *os = rgb_outer_sum.Data();
  auto* w = new AugmentWorker(env, 0, false, 0, Napi::Float32Array(), [=](float*) {
    image_stats_accumulate(px, n, height, width, ps, rs, os);
  });
  for (Napi::Value v : {Napi::Value(pixels), Napi::Value(pixel_sum), Napi::Value(rgb_sum), Napi::Value(rgb_outer_sum)}) w->Keep(v);
  w->Queue();
  return w->Promise();
}

Napi::Value AugmentCenter(const Napi::CallbackInfo& info) { return test_crop(info, augment_center, 1); }

Napi::Value AugmentTenCrop(const Napi::CallbackInfo& info) { return test_crop(info, augment_ten_crop, 10); }

}  // namespace alexnet
