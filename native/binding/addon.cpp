// Registers the addon's exports; nothing else lives here.
#include <napi.h>

#include "augment_wrap.h"
#include "config.h"
#include "convert.h"
#include "cuda_loader.h"
#include "errors.h"
#include "gemm.h"
#include "image_stats_wrap.h"
#include "peak_wrap.h"
#include "layers.h"
#include "network_wrap.h"

namespace alexnet {
namespace {

Napi::Value PresetConfig(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw type_error(info.Env(), "model must be a string");
  const NetConfig cfg = with_js_errors(info.Env(), [&] { return preset_config(info[0].As<Napi::String>()); });
  return config_to_js(info.Env(), cfg);
}

Napi::Value PresetNames(const Napi::CallbackInfo& info) {
  auto names = preset_names();
  Napi::Array a = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); i++) a.Set((uint32_t)i, names[i]);
  return a;
}

// Checks a config without allocating a network: returns the layer output shapes.
Napi::Value InferShapes(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject()) throw type_error(info.Env(), "config must be an object");
  const NetConfig cfg = with_js_errors(info.Env(), [&] { return config_from_js(info[0].As<Napi::Object>()); });
  std::vector<Shape> shapes;
  try {
    shapes = infer_shapes(cfg);
  } catch (const std::exception& e) {
    throw js_error(info.Env(), e, "invalid network config: ");
  } catch (...) {  // a JS Error (code INTERNAL), never std::terminate
    throw js_error(info.Env(), ErrorCode::Internal, std::string("checking the network config: ") + kUnknownException);
  }
  Napi::Array a = Napi::Array::New(info.Env(), shapes.size());
  for (size_t i = 0; i < shapes.size(); i++) {
    Napi::Array s = Napi::Array::New(info.Env(), 3);
    s.Set(0u, shapes[i].c);
    s.Set(1u, shapes[i].h);
    s.Set(2u, shapes[i].w);
    a.Set((uint32_t)i, s);
  }
  return a;
}

// {built, loaded, count, info}: whether the CUDA backend is compiled in, loads, and how
// many devices it sees (info names them, or says why there are none). Loads the backend.
Napi::Value CudaDevicesInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CudaDevices d = cuda_devices();
  Napi::Object o = Napi::Object::New(env);
  o.Set("built", cuda_built());
  o.Set("loaded", d.loaded);
  o.Set("count", d.count);
  o.Set("info", d.info);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Network", NetworkWrap::Define(env));
  exports.Set("presetConfig", Napi::Function::New(env, PresetConfig));
  exports.Set("presetNames", Napi::Function::New(env, PresetNames));
  exports.Set("inferShapes", Napi::Function::New(env, InferShapes));
  exports.Set("augmentTrain", Napi::Function::New(env, AugmentTrain));
  exports.Set("augmentCenter", Napi::Function::New(env, AugmentCenter));
  exports.Set("augmentTenCrop", Napi::Function::New(env, AugmentTenCrop));
  exports.Set("accumulateImageStats", Napi::Function::New(env, AccumulateImageStats));
  exports.Set("cudaDevices", Napi::Function::New(env, CudaDevicesInfo));
  exports.Set("measurePeakFlops", Napi::Function::New(env, MeasurePeakFlops));
  Napi::Object build = Napi::Object::New(env);
  build.Set("cuda", cuda_built());  // compiled in; cudaDevices() says whether it can run
  build.Set("cudaLibrary", cuda_built() ? Napi::Value(Napi::String::New(env, cuda_library_path()))
                                        : env.Null());
#ifdef ALEXNET_BLAS_NAME
  build.Set("blas", ALEXNET_BLAS_NAME);
#else
  build.Set("blas", "openblas");
#endif
  build.Set("blasCore", blas_core());
  build.Set("defaultThreads", default_compute_threads());
  exports.Set("build", build);
  return exports;
}

}  // namespace
}  // namespace alexnet

static Napi::Object InitAlexnet(Napi::Env env, Napi::Object exports) {
  return alexnet::Init(env, exports);
}
NODE_API_MODULE(alexnet, InitAlexnet)
