// The JS class `Network`: a thin wrapper over a NetworkBackend (the CPU alexnet::Network,
// or the CUDA backend loaded on demand). Long operations run as PromiseWorkers on the
// libuv pool and return promises; parameter tensors are exposed as zero-copy Float32Arrays over
// native (host) memory.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>

#include "backend.h"
#include "network.h"

namespace alexnet {

class PromiseWorker;

class NetworkWrap : public Napi::ObjectWrap<NetworkWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NetworkWrap(const Napi::CallbackInfo& info);

  std::shared_ptr<NetworkBackend> net;
  bool on_device = false;  // CUDA: host tensors are copies, synced around each access
  // One operation at a time: a second call while one runs is refused (the TS wrapper
  // queues calls, so users only meet this when they bypass it).
  std::atomic<bool> busy{false};

 private:
  Napi::Value Config(const Napi::CallbackInfo& info);
  Napi::Value Params(const Napi::CallbackInfo& info);
  Napi::Value Tensor(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Backward(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value DropoutMasks(const Napi::CallbackInfo& info);
  Napi::Value GetRngState(const Napi::CallbackInfo& info);
  Napi::Value SetRngState(const Napi::CallbackInfo& info);
  Napi::Value GetThreads(const Napi::CallbackInfo& info);
  Napi::Value SetThreads(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value LayerSecondsOf(const Napi::CallbackInfo& info);
  Napi::Value ResetLayerSeconds(const Napi::CallbackInfo& info);
  void EnsureIdle(Napi::Env env);
  // Marks the network busy and queues the worker (which clears the flag when it settles).
  Napi::Promise Start(PromiseWorker* worker);
};

}  // namespace alexnet
