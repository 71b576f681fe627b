// A network built from a NetConfig: parameters (weights, gradients, momentum), per-layer
// activations for a batch, forward/backward/update over the CPU layer functions, and the
// RNG state (seed, step counter). Plain C++: the binding and the standalone tests use it.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "config.h"

#include "error.h"
#include "layers.h"

namespace alexnet {

// Zeroed memory without writing it: calloc (large blocks come straight from the OS as
// zero pages) and no value-initialisation on resize. A network's 3 x 244 MB of parameters
// then cost nothing until used: a load writes each page once, and gradient pages are
// first touched by the first backward.
template <typename T>
struct ZeroedAllocator {
  using value_type = T;
  ZeroedAllocator() = default;
  template <typename U>
  ZeroedAllocator(const ZeroedAllocator<U>&) {}
  T* allocate(size_t n) {
    void* p = std::calloc(n, sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <typename U>
  void construct(U*) {}  // already zero
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) { ::new ((void*)p) U(std::forward<Args>(args)...); }
  template <typename U>
  bool operator==(const ZeroedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const ZeroedAllocator<U>&) const { return false; }
};
using ZeroedFloats = std::vector<float, ZeroedAllocator<float>>;

struct Param {
  std::string name;                // "<layer>.weight" or "<layer>.bias"
  std::vector<int64_t> shape;      // weight: (O, C/G, K, K) or (O, I); bias: (O)
  ZeroedFloats value, grad, momentum;  // zero until initialised or loaded
};

// A dropout layer's mask for the last training forward, named after the linear layer
// it follows ("mask.fc6"); shape (N, features).
struct DropoutMask {
  std::string name;
  const float* data;
  int64_t rows, cols;
};

// Seconds per layer (config order), summed over calls since the last reset.
struct LayerSeconds {
  std::vector<double> forward, backward;
};

struct SgdConfig {
  float lr = 0.01f, momentum = 0.9f, weight_decay = 0.0005f;  // the paper's
  // Per parameter (params() order) a factor on lr and so on the decay (Caffe's lr_mult):
  // fine-tuning's 10 for a layer drawn afresh, 0 for a frozen one, which is then not
  // updated at all (its momentum kept). Empty: 1 for every parameter.
  std::vector<float> lr_scale;
  float lr_of(size_t param) const { return lr_scale.empty() ? lr : lr * lr_scale[param]; }
};

// The error for a NaN/Inf loss at `step` (NON_FINITE_LOSS): the update is refused, the
// state stays the last good one.
Error non_finite_loss_error(float loss, uint64_t step);

// Every label of a batch of N in [0, classes), else std::invalid_argument naming the first
// that is not (both backends check a batch before they touch it).
void check_labels(const int32_t* labels, int N, int classes);
// An lr_scale that is empty or has one factor per parameter, each finite and >= 0, else
// std::invalid_argument (both backends check it before a step touches anything).
void check_lr_scale(const SgdConfig& sgd, size_t params);
// A layer index within the config and a forward done (batch > 0), else std::invalid_argument
// or BAD_STATE (both backends check it before reading a layer's output).
void check_layer_output(const NetConfig& cfg, size_t layer, int batch);

class Network {
 public:
  // Validates the config (std::invalid_argument on error) and initializes the parameters
  // as the paper: weights ~ N(0, weight_std^2), biases = bias_init; momentum zero.
  // init false: weights and biases stay zero (for a network whose state is loaded next).
  Network(const NetConfig& cfg, uint64_t seed, int threads = 0, bool init = true);

  const NetConfig& config() const { return cfg_; }
  const std::vector<Shape>& shapes() const { return shapes_; }
  std::vector<Param>& params() { return params_; }
  Param* find_param(const std::string& name);
  int64_t input_size() const { return (int64_t)cfg_.channels * cfg_.height * cfg_.width; }

  // images (N,C,H,W) as float32; labels (N) or null. train: dropout on. Returns the mean
  // loss when labels are given (NaN otherwise); logits() then holds (N, classes).
  float forward(const float* images, const int32_t* labels, int N, bool train);
  const float* logits() const;
  // Layer `layer`'s output (config order) of the last forward, (N, shapes()[layer].size()),
  // valid until the next forward: e.g. the ReLU after fc7, DeCAF's fc7 features. Throws
  // std::invalid_argument for a layer out of range, BAD_STATE before any forward.
  const float* layer_output(size_t layer) const;
  int batch() const { return batch_; }
  // Gradients of the last forward's loss into every Param::grad. Needs labels.
  void backward();
  // The paper's SGD step on every parameter; advances the step counter (the dropout draw).
  void update(const SgdConfig& sgd);
  // forward(train) + backward + update; throws Error NON_FINITE_LOSS on a NaN/Inf loss
  // before touching any weight, so the state stays the last good one.
  float step(const float* images, const int32_t* labels, int N, const SgdConfig& sgd, bool dropout);

  std::vector<DropoutMask> dropout_masks() const;

  uint64_t seed() const { return seed_; }
  uint64_t step_counter() const { return counter_; }
  void set_rng_state(uint64_t seed, uint64_t counter) { seed_ = seed; counter_ = counter; }
  // Seconds spent in each layer's forward and backward since the last reset (for
  // benchmarks: where the time goes).
  const std::vector<double>& forward_seconds() const { return forward_seconds_; }
  const std::vector<double>& backward_seconds() const { return backward_seconds_; }
  void reset_timers();
  // What the GEMMs take (gemm.h): fp32 (the default) or bf16 inputs with fp32 sums; weights,
  // momentum, activations and the update stay fp32.
  Precision precision() const { return scratch_.precision; }
  void set_precision(Precision p) { scratch_.precision = p; }
  int threads() const { return threads_; }
  void set_threads(int threads) { threads_ = threads > 0 ? threads : default_compute_threads(); }

 private:
  struct LayerBuffers {
    std::vector<float> out, aux;      // aux: lrn scale or dropout mask
    std::vector<int32_t> argmax;      // maxpool
    int weight = -1, bias = -1;       // indices into params_
  };
  void resize_batch(int N);

  NetConfig cfg_;
  std::vector<Shape> shapes_;
  std::vector<Param> params_;
  std::vector<LayerBuffers> bufs_;
  std::vector<float> input_, probs_, grad_a_, grad_b_;
  std::vector<int32_t> labels_;
  bool have_labels_ = false, last_train_ = false;
  int batch_ = 0;
  uint64_t seed_ = 0, counter_ = 0;
  int threads_ = 1;
  Scratch scratch_;
  std::vector<double> forward_seconds_, backward_seconds_;
};

}  // namespace alexnet
