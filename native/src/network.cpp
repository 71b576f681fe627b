// Network: layer buffers, the forward/backward walk over the layer list, the update.
#include "network.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "rng.h"

namespace alexnet {
namespace {
using clk = std::chrono::steady_clock;
double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}
}  // namespace

void Network::reset_timers() {
  forward_seconds_.assign(cfg_.layers.size(), 0.0);
  backward_seconds_.assign(cfg_.layers.size(), 0.0);
}

Network::Network(const NetConfig& cfg, uint64_t seed, int threads, bool init)
    : cfg_(cfg), shapes_(infer_shapes(cfg)), seed_(seed) {
  set_threads(threads);
  reset_timers();
  bufs_.resize(cfg_.layers.size());
  Shape in{cfg_.channels, cfg_.height, cfg_.width};
  for (size_t i = 0; i < cfg_.layers.size(); i++) {
    const LayerSpec& l = cfg_.layers[i];
    if (l.type == LayerType::Conv || l.type == LayerType::Linear) {
      Param w, b;
      w.name = l.name + ".weight";
      b.name = l.name + ".bias";
      if (l.type == LayerType::Conv)
        w.shape = {l.out, in.c / l.groups, l.kernel, l.kernel};
      else
        w.shape = {l.out, in.size()};
      b.shape = {l.out};
      bufs_[i].weight = (int)params_.size();
      params_.push_back(std::move(w));
      bufs_[i].bias = (int)params_.size();
      params_.push_back(std::move(b));
    }
    in = shapes_[i];
  }
  for (size_t pi = 0; pi < params_.size(); pi++) {
    Param& p = params_[pi];
    int64_t n = 1;
    for (int64_t d : p.shape) n *= d;
    p.value.resize(n);     // zero (ZeroedAllocator), without a pass over the memory
    p.grad.resize(n);
    p.momentum.resize(n);
  }
  for (size_t i = 0; init && i < cfg_.layers.size(); i++) {
    if (bufs_[i].weight < 0) continue;
    Param& w = params_[bufs_[i].weight];
    const uint64_t stream = RNG_STREAM_INIT + (uint64_t)bufs_[i].weight;
    // Each draw is a pure function of (seed, stream, index) (rng.h), so the threads fill
    // their slices with the same values a serial loop would: bit-identical for any thread
    // count (the paper's 61M weights: ~2 s serial). OpenMP's current thread count, not
    // threads_: a one-off burst at construction (the CUDA backend builds with threads 1).
    float* value = w.value.data();
    const int64_t count = (int64_t)w.value.size();
    const double std_dev = cfg_.weight_std;
#pragma omp parallel for schedule(static) if (count >= 65536)
    for (int64_t j = 0; j < count; j++)
      value[j] = (float)(std_dev * rng_normal(seed_, stream, 0, (uint64_t)j));
    std::fill(params_[bufs_[i].bias].value.begin(), params_[bufs_[i].bias].value.end(),
              cfg_.layers[i].bias_init);
  }
}

Param* Network::find_param(const std::string& name) {
  for (auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

void Network::resize_batch(int N) {
  if (N == batch_) return;
  batch_ = N;
  input_.resize((size_t)N * input_size());
  size_t largest = input_.size();
  for (size_t i = 0; i < cfg_.layers.size(); i++) {
    const size_t n = (size_t)N * shapes_[i].size();
    LayerBuffers& b = bufs_[i];
    b.out.resize(n);
    largest = std::max(largest, n);
    switch (cfg_.layers[i].type) {
      case LayerType::Lrn:
      case LayerType::Dropout: b.aux.resize(n); break;
      case LayerType::MaxPool: b.argmax.resize(n); break;
      default: break;
    }
  }
  probs_.resize((size_t)N * cfg_.classes);
  labels_.resize(N);
  grad_a_.resize(largest);
  grad_b_.resize(largest);
}

const float* Network::logits() const { return bufs_.back().out.data(); }

const float* Network::layer_output(size_t layer) const {
  check_layer_output(cfg_, layer, batch_);
  return bufs_[layer].out.data();
}

void check_layer_output(const NetConfig& cfg, size_t layer, int batch) {
  if (layer >= cfg.layers.size())
    throw std::invalid_argument("layer " + std::to_string(layer) + " is outside the network's " +
                                std::to_string(cfg.layers.size()) + " layers");
  if (!batch) throw Error(ErrorCode::BadState, "a layer's output needs a forward first");
}

float Network::forward(const float* images, const int32_t* labels, int N, bool train) {
  if (N < 1) throw std::invalid_argument("batch size must be at least 1");
  set_compute_threads(threads_);
  resize_batch(N);
  std::memcpy(input_.data(), images, sizeof(float) * input_.size());
  have_labels_ = labels != nullptr;
  last_train_ = train;
  if (labels) {
    check_labels(labels, N, cfg_.classes);
    std::copy(labels, labels + N, labels_.begin());
  }
  const float* x = input_.data();
  Shape in{cfg_.channels, cfg_.height, cfg_.width};
  for (size_t i = 0; i < cfg_.layers.size(); i++) {
    const LayerSpec& l = cfg_.layers[i];
    LayerBuffers& b = bufs_[i];
    float* y = b.out.data();
    const int64_t n_out = (int64_t)N * shapes_[i].size();
    const auto t0 = clk::now();
    switch (l.type) {
      case LayerType::Conv:
        conv_forward(y, x, params_[b.weight].value.data(), params_[b.bias].value.data(), N, in.c,
                     in.h, in.w, l.out, l.kernel, l.stride, l.pad, l.groups, scratch_);
        break;
      case LayerType::Relu: relu_forward(y, x, n_out); break;
      case LayerType::Lrn:
        lrn_forward(y, b.aux.data(), x, N, in.c, in.h, in.w, l.groups, l.size, l.alpha, l.beta, l.k);
        break;
      case LayerType::MaxPool:
        maxpool_forward(y, b.argmax.data(), x, N, in.c, in.h, in.w, l.kernel, l.stride);
        break;
      case LayerType::Linear:
        linear_forward(y, x, params_[b.weight].value.data(), params_[b.bias].value.data(), N,
                       (int)in.size(), l.out, scratch_.precision);
        break;
      case LayerType::Dropout:
        if (train)
          dropout_forward(y, b.aux.data(), x, n_out, l.p, seed_, RNG_STREAM_DROPOUT + i, counter_);
        else
          std::memcpy(y, x, sizeof(float) * n_out);
        break;
    }
    forward_seconds_[i] += seconds_since(t0);
    x = y;
    in = shapes_[i];
  }
  if (!labels) return NAN;
  return softmax_xent_forward(probs_.data(), logits(), labels_.data(), N, cfg_.classes);
}

void Network::backward() {
  if (!batch_ || !have_labels_)
    throw Error(ErrorCode::BadState, "backward needs a forward with labels first");
  set_compute_threads(threads_);
  const int N = batch_;
  float* dout = grad_a_.data();
  float* dinp = grad_b_.data();
  softmax_xent_backward(dout, probs_.data(), labels_.data(), N, cfg_.classes);
  for (size_t i = cfg_.layers.size(); i-- > 0;) {
    const LayerSpec& l = cfg_.layers[i];
    LayerBuffers& b = bufs_[i];
    const Shape in = i ? shapes_[i - 1] : Shape{cfg_.channels, cfg_.height, cfg_.width};
    const float* x = i ? bufs_[i - 1].out.data() : input_.data();
    const int64_t n_in = (int64_t)N * in.size();
    float* dx = i ? dinp : nullptr;  // nobody needs the gradient of the images
    const auto t0 = clk::now();
    switch (l.type) {
      case LayerType::Conv:
        conv_backward(dx, params_[b.weight].grad.data(), params_[b.bias].grad.data(), dout, x,
                      params_[b.weight].value.data(), N, in.c, in.h, in.w, l.out, l.kernel,
                      l.stride, l.pad, l.groups, scratch_);
        break;
      case LayerType::Linear:
        linear_backward(dx, params_[b.weight].grad.data(), params_[b.bias].grad.data(), dout, x,
                        params_[b.weight].value.data(), N, (int)in.size(), l.out, scratch_.precision);
        break;
      case LayerType::Relu:
        if (dx) relu_backward(dx, dout, b.out.data(), n_in);
        break;
      case LayerType::Lrn:
        if (dx)
          lrn_backward(dx, dout, x, b.out.data(), b.aux.data(), N, in.c, in.h, in.w, l.groups,
                       l.size, l.alpha, l.beta);
        break;
      case LayerType::MaxPool:
        if (dx) maxpool_backward(dx, dout, b.argmax.data(), N, in.c, in.h, in.w, l.kernel, l.stride);
        break;
      case LayerType::Dropout:
        if (dx) {
          if (last_train_)
            dropout_backward(dx, dout, b.aux.data(), n_in);
          else
            std::memcpy(dx, dout, sizeof(float) * n_in);
        }
        break;
    }
    backward_seconds_[i] += seconds_since(t0);
    std::swap(dout, dinp);
  }
}

void Network::update(const SgdConfig& sgd) {
  check_lr_scale(sgd, params_.size());
  set_compute_threads(threads_);
  for (size_t i = 0; i < params_.size(); i++) {
    Param& p = params_[i];
    const float lr = sgd.lr_of(i);
    if (lr == 0.0f) continue;  // frozen
    sgd_update(p.value.data(), p.momentum.data(), p.grad.data(), (int64_t)p.value.size(), lr,
               sgd.momentum, sgd.weight_decay);
  }
  counter_++;
}

void check_labels(const int32_t* labels, int N, int classes) {
  for (int n = 0; n < N; n++)
    if (labels[n] < 0 || labels[n] >= classes)
      throw std::invalid_argument("labels[" + std::to_string(n) + "] = " + std::to_string(labels[n]) +
                                  " is outside [0, " + std::to_string(classes) + ")");
}

void check_lr_scale(const SgdConfig& sgd, size_t params) {
  if (sgd.lr_scale.empty()) return;
  if (sgd.lr_scale.size() != params)
    throw std::invalid_argument("lrScale has " + std::to_string(sgd.lr_scale.size()) + " factors; the network has " +
                                std::to_string(params) + " parameters");
  for (size_t i = 0; i < params; i++)
    if (!(std::isfinite(sgd.lr_scale[i]) && sgd.lr_scale[i] >= 0.0f))
      throw std::invalid_argument("lrScale[" + std::to_string(i) + "] = " + std::to_string(sgd.lr_scale[i]) +
                                  " is not a finite factor >= 0");
}

Error non_finite_loss_error(float loss, uint64_t step) {
  return Error(ErrorCode::NonFiniteLoss,
               "loss is " + std::string(std::isnan(loss) ? "NaN" : "Inf") + " at step " + std::to_string(step) +
                   ": the update was not applied (lower the learning rate or check the input)");
}

float Network::step(const float* images, const int32_t* labels, int N, const SgdConfig& sgd,
                    bool dropout) {
  check_lr_scale(sgd, params_.size());
  const float loss = forward(images, labels, N, dropout);
  if (!std::isfinite(loss))
    throw non_finite_loss_error(loss, counter_);
  backward();
  update(sgd);
  return loss;
}

std::vector<DropoutMask> Network::dropout_masks() const {
  std::vector<DropoutMask> masks;
  if (!last_train_ || !batch_) return masks;
  std::string owner = "input";
  for (size_t i = 0; i < cfg_.layers.size(); i++) {
    if (!cfg_.layers[i].name.empty()) owner = cfg_.layers[i].name;
    if (cfg_.layers[i].type == LayerType::Dropout)
      masks.push_back({"mask." + owner, bufs_[i].aux.data(), batch_, shapes_[i].size()});
  }
  return masks;
}

}  // namespace alexnet
