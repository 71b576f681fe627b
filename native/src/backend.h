// The network interface the addon drives, whichever backend computes: the CPU reference
// (alexnet::Network, wrapped in native/binding) or the CUDA backend (CudaNetwork, in
// libalexnet_cuda.so, which the addon dlopens only when device 'cuda' is asked for: see
// cuda/api.h). Plain C++, no CUDA headers: the addon includes it without the CUDA toolkit.
// A method that fails throws; alexnet::Error (error.h) carries the code of what failed.
//
// Parameters live in host Param arrays (name, shape, value, grad, momentum) for both
// backends, so the state save/load of native/state.ts works unchanged. A device backend
// keeps its own copies on the GPUs: call params_to_host() before reading the host arrays
// and params_written() after writing them (the next operation uploads them).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "network.h"

namespace alexnet {

// Where a network runs. From the Network constructor's options or the environment
// (ALEXNET_DEVICE=cuda, ALEXNET_CUDA_DEVICES=0,1, ALEXNET_CUDA_PARALLEL=model|data,
// ALEXNET_CUDA_PRECISION=fp32|tf32|bf16).
struct DeviceOptions {
  std::string device = "cpu";     // "cpu" | "cuda"
  std::vector<int> devices;       // CUDA device ids; empty: {0}
  std::string parallel = "model";  // "model": the paper's two columns (one GPU each, or both
                                   // on one GPU on two streams); "data": one replica per GPU
  std::string precision = "fp32";  // GEMM inputs: "fp32", "tf32" (TF32 tensor cores) or "bf16"
                                   // (bf16 inputs, fp32 accumulation); all else stays fp32
  bool sequential = false;         // both columns on one stream (tests: streams vs none)
};

class NetworkBackend {
 public:
  virtual ~NetworkBackend() = default;
  virtual std::string device_name() const = 0;  // "cpu", "cuda:0,1 (model parallel, fp32)"
  virtual const NetConfig& config() const = 0;
  virtual std::vector<Param>& params() = 0;
  virtual Param* find_param(const std::string& name) = 0;
  virtual void params_to_host() {}
  virtual void params_written() {}
  virtual float forward(const float* images, const int32_t* labels, int N, bool train) = 0;
  virtual const float* logits() const = 0;
  // Each layer's output (C, H, W), config order.
  virtual const std::vector<Shape>& shapes() const = 0;
  // Copies layer `layer`'s output of the last forward, (batch(), shapes()[layer].size()),
  // into `out` (host memory): the features of a named layer (the binding's forward with a
  // feature layer). Throws as check_layer_output.
  virtual void copy_layer_output(size_t layer, float* out) = 0;
  virtual int batch() const = 0;
  virtual void backward() = 0;
  virtual void update(const SgdConfig& sgd) = 0;
  virtual float step(const float* images, const int32_t* labels, int N, const SgdConfig& sgd,
                     bool dropout) = 0;
  virtual std::vector<DropoutMask> dropout_masks() = 0;
  virtual uint64_t seed() const = 0;
  virtual uint64_t step_counter() const = 0;
  virtual void set_rng_state(uint64_t seed, uint64_t counter) = 0;
  virtual int threads() const = 0;
  virtual void set_threads(int threads) = 0;
  // Seconds each layer spent in forward and in backward since the last reset, summed over
  // calls (the CPU backend; a device backend that does not time its layers leaves them empty).
  virtual LayerSeconds layer_seconds() const { return {}; }
  virtual void reset_layer_seconds() {}
};

}  // namespace alexnet
