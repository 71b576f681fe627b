// The CPU reference network (alexnet::Network) behind the backend interface the binding
// drives (backend.h). Its host parameter arrays are the network's own memory.
#pragma once
#include <algorithm>

#include "backend.h"
#include "network.h"

namespace alexnet {

class CpuBackend : public NetworkBackend {
 public:
  CpuBackend(const NetConfig& cfg, uint64_t seed, int threads, bool init = true,
             Precision precision = Precision::Fp32)
      : net_(cfg, seed, threads, init) {
    net_.set_precision(precision);
  }
  // "cpu", or with bf16 GEMMs "cpu (bf16 GEMMs, AVX512_BF16)" where the CPU has them and
  // "cpu (bf16 asked, fp32 GEMMs: no AVX512_BF16)" where it does not.
  std::string device_name() const override {
    if (net_.precision() == Precision::Fp32) return "cpu";
    return bf16_gemm_available() ? "cpu (bf16 GEMMs, AVX512_BF16)" : "cpu (bf16 asked, fp32 GEMMs: no AVX512_BF16)";
  }
  const NetConfig& config() const override { return net_.config(); }
  std::vector<Param>& params() override { return net_.params(); }
  Param* find_param(const std::string& name) override { return net_.find_param(name); }
  float forward(const float* images, const int32_t* labels, int N, bool train) override {
    return net_.forward(images, labels, N, train);
  }
  const float* logits() const override { return net_.logits(); }
  const std::vector<Shape>& shapes() const override { return net_.shapes(); }
  void copy_layer_output(size_t layer, float* out) override {
    const float* y = net_.layer_output(layer);
    std::copy(y, y + (size_t)net_.batch() * net_.shapes()[layer].size(), out);
  }
  int batch() const override { return net_.batch(); }
  void backward() override { net_.backward(); }
  void update(const SgdConfig& sgd) override { net_.update(sgd); }
  float step(const float* images, const int32_t* labels, int N, const SgdConfig& sgd,
             bool dropout) override {
    return net_.step(images, labels, N, sgd, dropout);
  }
  std::vector<DropoutMask> dropout_masks() override { return net_.dropout_masks(); }
  uint64_t seed() const override { return net_.seed(); }
  uint64_t step_counter() const override { return net_.step_counter(); }
  void set_rng_state(uint64_t seed, uint64_t counter) override { net_.set_rng_state(seed, counter); }
  int threads() const override { return net_.threads(); }
  void set_threads(int threads) override { net_.set_threads(threads); }
  LayerSeconds layer_seconds() const override { return {net_.forward_seconds(), net_.backward_seconds()}; }
  void reset_layer_seconds() override { net_.reset_timers(); }

 private:
  Network net_;
};

}  // namespace alexnet
