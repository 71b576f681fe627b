// Network methods. Each async method packs its inputs into a plain struct, runs the
// compute in NetworkWorker::Execute (no JS values touched there) and settles a promise.
#include "network_wrap.h"

#include <cstring>
#include <functional>
#include <stdexcept>

#include "convert.h"
#include "cpu_backend.h"
#include "cuda_loader.h"

namespace alexnet {
namespace {

// Runs `work` off the event loop; keeps every buffer it reads referenced until it is done.
class NetworkWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Result = std::function<Napi::Value(Napi::Env)>;
  NetworkWorker(Napi::Env env, NetworkWrap* owner, Work work, Result result)
      : Napi::AsyncWorker(env, "alexnet:network"), deferred_(Napi::Promise::Deferred::New(env)),
        owner_(owner), work_(std::move(work)), result_(std::move(result)) {
    owner_ref_ = Napi::Persistent(owner->Value());
  }
  void Keep(Napi::Value v) {
    if (v.IsObject()) refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    owner_->busy = false;
    deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    owner_->busy = false;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  NetworkWrap* owner_;
  Napi::ObjectReference owner_ref_;
  std::vector<Napi::ObjectReference> refs_;
  Work work_;
  Result result_;
};

template <typename T>
Napi::TypedArrayOf<T> typed_arg(const Napi::CallbackInfo& info, size_t i, const char* name,
                                napi_typedarray_type type, const char* type_name) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a " + type_name);
  return info[i].As<Napi::TypedArrayOf<T>>();
}

int int_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

SgdConfig sgd_arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsObject()) throw Napi::TypeError::New(info.Env(), "sgd must be an object {lr, momentum, weightDecay}");
  Napi::Object o = info[i].As<Napi::Object>();
  SgdConfig s;
  s.lr = o.Get("lr").As<Napi::Number>().FloatValue();
  s.momentum = o.Get("momentum").As<Napi::Number>().FloatValue();
  s.weight_decay = o.Get("weightDecay").As<Napi::Number>().FloatValue();
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
                      InstanceMethod<&NetworkWrap::Device>("device")});
}

// new Network(config, seed: bigint, threads: number, device?: {device, devices, parallel, precision})
NetworkWrap::NetworkWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetworkWrap>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "config must be an object");
  if (!info[1].IsBigInt()) throw Napi::TypeError::New(env, "seed must be a bigint");
  bool lossless = true;
  const uint64_t seed = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
  const int threads = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 0;
  NetConfig cfg = config_from_js(info[0].As<Napi::Object>());
  const DeviceOptions device = device_arg(info, 3);
  if (device.device == "cuda") {
    try {
      net = create_cuda_network(cfg, seed, device);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    on_device = true;
    return;
  }
  if (device.device != "cpu")
    throw Napi::TypeError::New(env, "device must be 'cpu' or 'cuda', not '" + device.device + "'");
  try {
    net = std::make_shared<CpuBackend>(cfg, seed, threads);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("invalid network config: ") + e.what());
  }
}

void NetworkWrap::EnsureIdle(Napi::Env env) {
  if (busy) throw Napi::Error::New(env, "the network is busy with another operation: await it first");
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
  if (!p) throw Napi::Error::New(env, "no parameter named '" + name + "'");
  if (on_device) {
    // The view is a host copy: bring it up to date now, and upload whatever the caller
    // writes into it before the next operation.
    EnsureIdle(env);
    try {
      net->params_to_host();
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    net->params_written();
  }
  std::vector<float>* v = kind == "value" ? &p->value
                          : kind == "grad" ? &p->grad
                          : kind == "momentum" ? &p->momentum
                                               : nullptr;
  if (!v) throw Napi::TypeError::New(env, "kind must be 'value', 'grad' or 'momentum'");
  auto* keep = new std::shared_ptr<NetworkBackend>(net);
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(
      env, v->data(), v->size() * sizeof(float),
      [](Napi::Env, void*, std::shared_ptr<NetworkBackend>* hint) { delete hint; }, keep);
  return Napi::Float32Array::New(env, v->size(), buf, 0);
}

// forward(images: Float32Array, labels: Int32Array | null, n, train) -> {loss, logits}
Napi::Value NetworkWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureIdle(env);
  auto images = typed_arg<float>(info, 0, "images", napi_float32_array, "Float32Array");
  const float* labels_ptr = nullptr;
  const int32_t* labels = nullptr;
  (void)labels_ptr;
  if (!info[1].IsNull() && !info[1].IsUndefined())
    labels = typed_arg<int32_t>(info, 1, "labels", napi_int32_array, "Int32Array").Data();
  const int n = int_arg(info, 2, "n");
  const bool train = info[3].ToBoolean();
  auto shared = net;
  auto loss = std::make_shared<float>(0.0f);
  const float* img = images.Data();
  auto* w = new NetworkWorker(
      env, this, [=] { *loss = shared->forward(img, labels, n, train); },
      [=](Napi::Env e) {
        Napi::Object r = Napi::Object::New(e);
        r.Set("loss", *loss);
        r.Set("logits", copy_floats(e, shared->logits(), (size_t)n * shared->config().classes));
        return r;
      });
  w->Keep(images);
  w->Keep(info[1]);
  busy = true;
  w->Queue();
  return w->Promise();
}

Napi::Value NetworkWrap::Backward(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  auto shared = net;
  auto* w = new NetworkWorker(info.Env(), this, [=] { shared->backward(); }, nullptr);
  busy = true;
  w->Queue();
  return w->Promise();
}

// update({lr, momentum, weightDecay})
Napi::Value NetworkWrap::Update(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  auto shared = net;
  const SgdConfig sgd = sgd_arg(info, 0);
  auto* w = new NetworkWorker(info.Env(), this, [=] { shared->update(sgd); }, nullptr);
  busy = true;
  w->Queue();
  return w->Promise();
}

// step(images, labels, n, {lr, momentum, weightDecay}, dropout) -> {loss}
Napi::Value NetworkWrap::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureIdle(env);
  auto images = typed_arg<float>(info, 0, "images", napi_float32_array, "Float32Array");
  auto labels = typed_arg<int32_t>(info, 1, "labels", napi_int32_array, "Int32Array");
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
  busy = true;
  w->Queue();
  return w->Promise();
}

// [{name: "mask.fc6", rows, cols, data: Float32Array}] of the last training forward.
Napi::Value NetworkWrap::DropoutMasks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureIdle(env);
  std::vector<DropoutMask> masks;
  try {
    masks = net->dropout_masks();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
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
  if (!info[0].IsBigInt() || !info[1].IsBigInt())
    throw Napi::TypeError::New(info.Env(), "seed and counter must be bigints");
  bool lossless = true;
  net->set_rng_state(info[0].As<Napi::BigInt>().Uint64Value(&lossless),
                     info[1].As<Napi::BigInt>().Uint64Value(&lossless));
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

}  // namespace alexnet
