// Network methods. Each async method captures its inputs, runs the compute in
// NetworkWorker::Run (no JS values touched there) and settles a promise.
#include "network_wrap.h"

#include <cstring>
#include <functional>

#include "args.h"
#include "convert.h"
#include "cpu_backend.h"
#include "cuda_loader.h"
#include "errors.h"
#include "promise_worker.h"

namespace alexnet {
namespace {

// Runs `work` off the event loop and resolves with `result` (undefined when null); clears
// the network's busy flag once done, and keeps the network alive until then.
class NetworkWorker : public PromiseWorker {
 public:
  using Work = std::function<void()>;
  using MakeResult = std::function<Napi::Value(Napi::Env)>;
  NetworkWorker(Napi::Env env, NetworkWrap* owner, Work work, MakeResult result)
      : PromiseWorker(env, "alexnet:network"), owner_(owner), owner_ref_(Napi::Persistent(owner->Value())),
        work_(std::move(work)), result_(std::move(result)) {}

 protected:
  void Run() override { work_(); }
  Napi::Value Result(Napi::Env env) override { return result_ ? result_(env) : env.Undefined(); }
  void Settled() override { owner_->busy = false; }

 private:
  NetworkWrap* owner_;
  Napi::ObjectReference owner_ref_;
  Work work_;
  MakeResult result_;
};

SgdConfig sgd_arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsObject()) throw type_error(info.Env(), "sgd must be an object {lr, momentum, weightDecay}");
  Napi::Object o = info[i].As<Napi::Object>();
  SgdConfig s;
  s.lr = o.Get("lr").As<Napi::Number>().FloatValue();
  s.momentum = o.Get("momentum").As<Napi::Number>().FloatValue();
  s.weight_decay = o.Get("weightDecay").As<Napi::Number>().FloatValue();
  // lrScale: a Float32Array with one factor per parameter (checked in TypeScript), or absent.
  Napi::Value scale = o.Get("lrScale");
  if (scale.IsTypedArray()) {
    Napi::Float32Array a = scale.As<Napi::Float32Array>();
    s.lr_scale.assign(a.Data(), a.Data() + a.ElementLength());
  }
  return s;
}

Napi::Float32Array copy_floats(Napi::Env env, const float* data, size_t n) {
  Napi::Float32Array a = Napi::Float32Array::New(env, n);
  std::memcpy(a.Data(), data, n * sizeof(float));
  return a;
}

// {device: 'cpu' | 'cuda', devices?: number[], parallel?: 'model' | 'data', precision?: 'fp32' | 'tf32' | 'bf16'}
// (validated in TypeScript); absent: the CPU.
DeviceOptions device_arg(const Napi::CallbackInfo& info, size_t i) {
  DeviceOptions d;
  if (!info[i].IsObject()) return d;
  Napi::Object o = info[i].As<Napi::Object>();
  if (o.Get("device").IsString()) d.device = o.Get("device").As<Napi::String>();
  if (o.Get("parallel").IsString()) d.parallel = o.Get("parallel").As<Napi::String>();
  if (o.Get("precision").IsString()) d.precision = o.Get("precision").As<Napi::String>();
  if (o.Get("devices").IsArray()) {
    Napi::Array a = o.Get("devices").As<Napi::Array>();
    for (uint32_t k = 0; k < a.Length(); k++) d.devices.push_back(a.Get(k).As<Napi::Number>().Int32Value());
  }
  return d;
}

}  // namespace

Napi::Function NetworkWrap::Define(Napi::Env env) {
  return DefineClass(env, "Network",
                     {InstanceMethod<&NetworkWrap::Config>("config"),
                      InstanceMethod<&NetworkWrap::Params>("params"),
                      InstanceMethod<&NetworkWrap::Tensor>("tensor"),
                      InstanceMethod<&NetworkWrap::Forward>("forward"),
                      InstanceMethod<&NetworkWrap::Backward>("backward"),
                      InstanceMethod<&NetworkWrap::Update>("update"),
                      InstanceMethod<&NetworkWrap::Step>("step"),
                      InstanceMethod<&NetworkWrap::DropoutMasks>("dropoutMasks"),
                      InstanceMethod<&NetworkWrap::GetRngState>("getRngState"),
                      InstanceMethod<&NetworkWrap::SetRngState>("setRngState"),
                      InstanceMethod<&NetworkWrap::GetThreads>("getThreads"),
                      InstanceMethod<&NetworkWrap::SetThreads>("setThreads"),
                      InstanceMethod<&NetworkWrap::Device>("device"),
                      InstanceMethod<&NetworkWrap::LayerSecondsOf>("layerSeconds"),
                      InstanceMethod<&NetworkWrap::ResetLayerSeconds>("resetLayerSeconds")});
}

// new Network(config, seed: bigint, threads: number, device?: {device, devices, parallel, precision},
//             init?: boolean (false: no random initialisation, CPU only))
NetworkWrap::NetworkWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetworkWrap>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw type_error(env, "config must be an object");
  const uint64_t seed = uint64_value(info[1], "seed");
  const int threads = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 0;
  NetConfig cfg = config_from_js(info[0].As<Napi::Object>());
  const DeviceOptions device = device_arg(info, 3);
  if (device.device == "cuda") {
    net = with_js_errors(env, [&] { return create_cuda_network(cfg, seed, device); });
    on_device = true;
    return;
  }
  if (device.device != "cpu") throw type_error(env, "device must be 'cpu' or 'cuda', not '" + device.device + "'");
  try {
    net = std::make_shared<CpuBackend>(cfg, seed, threads, !info[4].IsBoolean() || info[4].As<Napi::Boolean>().Value(),
                                       parse_precision(device.precision.c_str()));
  } catch (const std::exception& e) {
    throw js_error(env, e, "invalid network config: ");
  }
}

void NetworkWrap::EnsureIdle(Napi::Env env) {
  if (busy) throw js_error(env, ErrorCode::BadState, "the network is busy with another operation: await it first");
}

Napi::Promise NetworkWrap::Start(PromiseWorker* worker) {
  busy = true;
  return worker->Start();
}

Napi::Value NetworkWrap::Config(const Napi::CallbackInfo& info) {
  return config_to_js(info.Env(), net->config());
}

// [{name, shape}] in parameter order.
Napi::Value NetworkWrap::Params(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto& params = net->params();
  Napi::Array out = Napi::Array::New(env, params.size());
  for (size_t i = 0; i < params.size(); i++) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", params[i].name);
    Napi::Array shape = Napi::Array::New(env, params[i].shape.size());
    for (size_t d = 0; d < params[i].shape.size(); d++) shape.Set((uint32_t)d, (double)params[i].shape[d]);
    p.Set("shape", shape);
    out.Set((uint32_t)i, p);
  }
  return out;
}

// tensor(name, kind: 'value' | 'grad' | 'momentum') -> Float32Array over native memory.
// The ArrayBuffer's finalizer holds the network alive as long as any view exists.
Napi::Value NetworkWrap::Tensor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = info[0].As<Napi::String>(), kind = info[1].As<Napi::String>();
  Param* p = net->find_param(name);
  if (!p) throw js_error(env, ErrorCode::BadArgument, "no parameter named '" + name + "'");
  if (on_device) {
    // The view is a host copy: bring it up to date now, and upload whatever the caller
    // writes into it before the next operation.
    EnsureIdle(env);
    with_js_errors(env, [&] { net->params_to_host(); });
    net->params_written();
  }
  ZeroedFloats* v = kind == "value" ? &p->value
                          : kind == "grad" ? &p->grad
                          : kind == "momentum" ? &p->momentum
                                               : nullptr;
  if (!v) throw type_error(env, "kind must be 'value', 'grad' or 'momentum'");
  auto* keep = new std::shared_ptr<NetworkBackend>(net);
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(
      env, v->data(), v->size() * sizeof(float),
      [](Napi::Env, void*, std::shared_ptr<NetworkBackend>* hint) { delete hint; }, keep);
  return Napi::Float32Array::New(env, v->size(), buf, 0);
}

// forward(images: Float32Array, labels: Int32Array | null, n, train, featureLayer?: number)
//   -> {loss, logits, features?}: with a layer index (checked in TypeScript), that layer's
//   output (n, its size) of this forward too, copied in the worker (from the GPU on CUDA).
Napi::Value NetworkWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureIdle(env);
  auto images = typed_array<float>(info[0], "images");
  const int32_t* labels = nullptr;
  if (!info[1].IsNull() && !info[1].IsUndefined()) labels = typed_array<int32_t>(info[1], "labels").Data();
  const int n = int_arg(info, 2, "n");
  const bool train = info[3].ToBoolean();
  const int feature_layer = info[4].IsNumber() ? int_arg(info, 4, "featureLayer") : -1;
  auto shared = net;
  auto loss = std::make_shared<float>(0.0f);
  auto features = std::make_shared<std::vector<float>>();
  const float* img = images.Data();
  auto* w = new NetworkWorker(
      env, this,
      [=] {
        *loss = shared->forward(img, labels, n, train);
        if (feature_layer < 0) return;
        check_layer_output(shared->config(), (size_t)feature_layer, shared->batch());
        features->resize((size_t)n * shared->shapes().at(feature_layer).size());
        shared->copy_layer_output((size_t)feature_layer, features->data());
      },
      [=](Napi::Env e) {
        Napi::Object r = Napi::Object::New(e);
        r.Set("loss", *loss);
        r.Set("logits", copy_floats(e, shared->logits(), (size_t)n * shared->config().classes));
        if (feature_layer >= 0) r.Set("features", copy_floats(e, features->data(), features->size()));
        return r;
      });
  w->Keep(images);
  w->Keep(info[1]);
  return Start(w);
}

Napi::Value NetworkWrap::Backward(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  auto shared = net;
  return Start(new NetworkWorker(info.Env(), this, [=] { shared->backward(); }, nullptr));
}

// update({lr, momentum, weightDecay})
Napi::Value NetworkWrap::Update(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  auto shared = net;
  const SgdConfig sgd = sgd_arg(info, 0);
  return Start(new NetworkWorker(info.Env(), this, [=] { shared->update(sgd); }, nullptr));
}

// step(images, labels, n, {lr, momentum, weightDecay}, dropout) -> {loss}
Napi::Value NetworkWrap::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureIdle(env);
  auto images = typed_array<float>(info[0], "images");
  auto labels = typed_array<int32_t>(info[1], "labels");
  const int n = int_arg(info, 2, "n");
  const SgdConfig sgd = sgd_arg(info, 3);
  const bool dropout = info[4].ToBoolean();
  auto shared = net;
  auto loss = std::make_shared<float>(0.0f);
  const float* img = images.Data();
  const int32_t* lab = labels.Data();
  auto* w = new NetworkWorker(
      env, this, [=] { *loss = shared->step(img, lab, n, sgd, dropout); },
      [=](Napi::Env e) {
        Napi::Object r = Napi::Object::New(e);
        r.Set("loss", *loss);
        return r;
      });
  w->Keep(images);
  w->Keep(labels);
  return Start(w);
}

// [{name: "mask.fc6", rows, cols, data: Float32Array}] of the last training forward.
Napi::Value NetworkWrap::DropoutMasks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureIdle(env);
  const std::vector<DropoutMask> masks = with_js_errors(env, [&] { return net->dropout_masks(); });
  Napi::Array out = Napi::Array::New(env, masks.size());
  for (size_t i = 0; i < masks.size(); i++) {
    Napi::Object m = Napi::Object::New(env);
    m.Set("name", masks[i].name);
    m.Set("rows", (double)masks[i].rows);
    m.Set("cols", (double)masks[i].cols);
    m.Set("data", copy_floats(env, masks[i].data, (size_t)(masks[i].rows * masks[i].cols)));
    out.Set((uint32_t)i, m);
  }
  return out;
}

// [seed, counter] as bigints.
Napi::Value NetworkWrap::GetRngState(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, Napi::BigInt::New(info.Env(), net->seed()));
  a.Set(1u, Napi::BigInt::New(info.Env(), net->step_counter()));
  return a;
}

Napi::Value NetworkWrap::SetRngState(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  net->set_rng_state(uint64_value(info[0], "seed"), uint64_value(info[1], "counter"));
  return info.Env().Undefined();
}

Napi::Value NetworkWrap::GetThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), net->threads());
}

// 'cpu', or the CUDA placement ("cuda:0,1 (model parallel, two columns on two devices, fp32)").
Napi::Value NetworkWrap::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), net->device_name());
}

Napi::Value NetworkWrap::SetThreads(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  net->set_threads(int_arg(info, 0, "threads"));
  return info.Env().Undefined();
}

// {forward: Float64Array, backward: Float64Array}: seconds per layer since the last reset
// (empty arrays where the backend does not time its layers).
Napi::Value NetworkWrap::LayerSecondsOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureIdle(env);
  const LayerSeconds s = net->layer_seconds();
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [key, values] : {std::pair{"forward", &s.forward}, std::pair{"backward", &s.backward}}) {
    Napi::Float64Array a = Napi::Float64Array::New(env, values->size());
    std::copy(values->begin(), values->end(), a.Data());
    out.Set(key, a);
  }
  return out;
}

Napi::Value NetworkWrap::ResetLayerSeconds(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  net->reset_layer_seconds();
  return info.Env().Undefined();
}

}  // namespace alexnet
