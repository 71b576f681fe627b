// augmentTrain / augmentCenter / augmentTenCrop. Arguments are unpacked and checked for
// memory safety here (types, buffer lengths against the sizes; native/augment.ts gives
// the friendly messages first); the sizes themselves are checked by augment.h, whose
// std::invalid_argument rejects the promise (BAD_ARGUMENT). The output is either the caller's
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

#include "args.h"
#include "augment.h"
#include "errors.h"
#include "layers.h"
#include "promise_worker.h"

namespace alexnet {
namespace {

// Runs an augmentation into the caller's output array (resolving with it) or into one it
// allocates off the event loop (resolving with a Float32Array that owns it; an empty one
// when there is nothing to write).
class AugmentWorker : public PromiseWorker {
 public:
  // work(out) fills out (out_floats floats; null when there is nothing to write or the
  // sizes are invalid, in which case work throws the size error). `given` is the
  // caller's output array (empty: allocate one).
  using Work = std::function<void(float* out)>;
  AugmentWorker(Napi::Env env, size_t out_floats, int threads, Napi::Float32Array given, Work work)
      : PromiseWorker(env, "alexnet:augment"), out_floats_(out_floats), threads_(threads), work_(std::move(work)) {
    if (!given.IsEmpty()) {
      given_ = given.Data();
      given_ref_ = Napi::Persistent(static_cast<Napi::Object>(given));
    }
  }

 protected:
  void Run() override {
    // OpenMP's thread count is per calling thread: set it on this libuv thread.
    omp_set_num_threads(threads_ > 0 ? threads_ : default_compute_threads());
    if (given_) {
      work_(given_);
      return;
    }
    if (out_floats_ > 0) out_.reset(new float[out_floats_]);
    work_(out_.get());
  }
  Napi::Value Result(Napi::Env env) override {
    if (given_) return given_ref_.Value();
    if (!out_) return Napi::Float32Array::New(env, 0);
    float* data = out_.release();
    Napi::ArrayBuffer buf;
    try {
      buf = Napi::ArrayBuffer::New(env, data, out_floats_ * sizeof(float),
                                   [](Napi::Env, void* p) { delete[] static_cast<float*>(p); });
    } catch (...) {
      delete[] data;
      throw;
    }
    return Napi::Float32Array::New(env, out_floats_, buf, 0);
  }

 private:
  float* given_ = nullptr;
  Napi::ObjectReference given_ref_;
  size_t out_floats_;
  int threads_;
  Work work_;
  std::unique_ptr<float[]> out_;
};

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
  c.pixels = typed_array<uint8_t>(info[0], "pixels");
  c.n = int_arg(info, 1, "n");
  c.size = int_arg(info, 2, "size");
  c.crop = int_arg(info, 3, "crop");
  c.opts = info[4].IsObject() ? info[4].As<Napi::Object>() : Napi::Object::New(env);
  c.threads = (int)number_field(c.opts, "threads", 0);
  c.sizes_ok = c.n >= 0 && c.size >= 1 && c.crop >= 1 && c.crop <= c.size;
  if (c.sizes_ok) {
    typed_array<uint8_t>(c.pixels, "pixels", (size_t)c.n * c.size * c.size * 3, "n*size*size*3 = ");
    c.mean = optional_typed_array<float>(c.opts, "mean", (size_t)c.size * c.size * 3);
  }
  return c;
}

// opts.out when given: a Float32Array of exactly the output's length.
Napi::Float32Array out_field(const Common& c, size_t floats) {
  return c.sizes_ok && floats > 0 ? optional_typed_array<float>(c.opts, "out", floats) : Napi::Float32Array();
}

using TestCrop = void (*)(float*, const uint8_t*, int, int, int, const float*);

Napi::Value test_crop(const Napi::CallbackInfo& info, TestCrop fn, size_t patches_per_image) {
  Common c = common_args(info);
  const uint8_t* pixels = c.pixels.Data();
  const float* mean = data_or_null(c.mean);
  const int n = c.n, size = c.size, crop = c.crop;
  const size_t floats = c.sizes_ok ? (size_t)n * patches_per_image * 3 * crop * crop : 0;
  auto* w = new AugmentWorker(info.Env(), floats, c.threads, out_field(c, floats),
                              [=](float* out) { fn(out, pixels, n, size, crop, mean); });
  w->Keep(c.pixels);
  w->Keep(c.mean);
  return w->Start();
}

}  // namespace

Napi::Value AugmentTrain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[4].IsObject()) throw type_error(env, "opts must be an object {seed, counter, ...}");
  Common c = common_args(info);
  // 12 floats: copied, so only the pixels and the mean need keeping.
  Napi::Float32Array vectors = optional_typed_array<float>(c.opts, "pcaVectors", 9),
                     values = optional_typed_array<float>(c.opts, "pcaValues", 3);
  const bool pca = !vectors.IsEmpty() && !values.IsEmpty();
  if (vectors.IsEmpty() != values.IsEmpty())
    throw type_error(env, "pcaVectors and pcaValues must be given together (or neither)");
  std::array<float, 9> v{};
  std::array<float, 3> l{};
  if (pca) {
    std::copy(vectors.Data(), vectors.Data() + 9, v.begin());
    std::copy(values.Data(), values.Data() + 3, l.begin());
  }
  const float sigma = (float)number_field(c.opts, "pcaSigma", 0.1);
  const uint64_t seed = uint64_value(c.opts.Get("seed"), "seed"), counter = uint64_value(c.opts.Get("counter"), "counter");
  const double first = number_field(c.opts, "firstIndex", 0);
  if (!(first >= 0 && first <= 9007199254740991.0))
    throw range_error(env, "firstIndex must be an integer in [0, 2^53)");
  const uint64_t first_index = (uint64_t)first;
  const uint8_t* pixels = c.pixels.Data();
  const float* mean = data_or_null(c.mean);
  const int n = c.n, size = c.size, crop = c.crop;
  const size_t floats = c.sizes_ok ? (size_t)n * 3 * crop * crop : 0;
  auto* w = new AugmentWorker(env, floats, c.threads, out_field(c, floats), [=](float* out) {
    augment_train(out, pixels, n, size, crop, mean, pca ? v.data() : nullptr, pca ? l.data() : nullptr,
                  sigma, seed, counter, first_index);
  });
  w->Keep(c.pixels);
  w->Keep(c.mean);
  return w->Start();
}

Napi::Value AugmentCenter(const Napi::CallbackInfo& info) { return test_crop(info, augment_center, 1); }

Napi::Value AugmentTenCrop(const Napi::CallbackInfo& info) { return test_crop(info, augment_ten_crop, 10); }

}  // namespace alexnet
