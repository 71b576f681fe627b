// CudaNetwork: construction (devices, streams, the column plan, parameter slices),
// parameter transfers, and update. The forward/backward walk and the column exchanges
// are in cuda_walk.cpp. Host code only: compiled by the C++ compiler against cudart.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "cuda_network.h"

namespace alexnet {
namespace cuda {
namespace {

Error no_device(const std::string& detail) {
  return Error(ErrorCode::CudaUnavailable, "CUDA requested but no CUDA device is available: " + detail +
                                               "; run on a GPU machine, or ask for the CPU (--device cpu, device: 'cpu', or ALEXNET_DEVICE unset)");
}

Layout full_layout(int C, int64_t HW) {
  Layout x;
  x.C = C;
  x.HW = HW;
  x.hi[0] = x.hi[1] = C;
  return x;
}

Layout as_full(Layout x) { return full_layout(x.C, x.HW); }

}  // namespace

int cuda_device_count_or_throw() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error for later calls
    throw no_device(cudaGetErrorString(e));
  }
  if (n == 0) throw no_device("the driver reports 0 devices");
  return n;
}

CudaNetwork::CudaNetwork(const NetConfig& cfg, uint64_t seed, const DeviceOptions& options)
    : cfg_(cfg), shapes_(infer_shapes(cfg)), seed_(seed) {
  {
    // The CPU backend's construction gives the parameters, their names, shapes and the
    // paper's initialization, bit for bit (it allocates no activations).
    Network cpu(cfg, seed, 1);
    params_ = std::move(cpu.params());
  }
  int next = 0;
  for (const LayerSpec& l : cfg_.layers) {
    const bool has = l.type == LayerType::Conv || l.type == LayerType::Linear;
    weight_of_.push_back(has ? next : -1);
    bias_of_.push_back(has ? next + 1 : -1);
    if (has) next += 2;
  }
  // A failure here unwinds the members: the streams, events, cuBLAS handles and device
  // arrays created so far release themselves. (The pinned buffers come later, with the
  // first batch.)
  setup_devices(options);
}

// Waits for queued work and frees the pinned buffers; then the members release the
// streams, events, handles and device arrays (timing events first, each column's events
// and handle before its streams), each on its own device. Never throws.
CudaNetwork::~CudaNetwork() {
  try {
    synchronize();
  } catch (...) {
  }
  for (void* p : {(void*)staging_, (void*)staging_labels_, (void*)logits_, (void*)losses_})
    if (p) cudaFreeHost(p);
}

std::string CudaNetwork::device_name() const {
  std::string ids;
  for (int d : devices_) ids += (ids.empty() ? "" : ",") + std::to_string(d);
  std::string how = data_parallel_
                        ? "data parallel, " + std::to_string(reps_.size()) + " replica(s)"
                        : std::string("model parallel, two columns on ") +
                              (reps_[0].cols[0].device == reps_[0].cols[1].device
                                   ? (sequential_ ? "one stream" : "one device, two streams")
                                   : "two devices");
  const char* conv = conv_forward_ == ConvForward::BATCHED ? ", conv forward batched"
                     : conv_forward_ == ConvForward::GEMM  ? ", conv forward gemm"
                                                           : "";
  return "cuda:" + ids + " (" + how + ", " + precision_name(precision_) + conv + ")";
}

Param* CudaNetwork::find_param(const std::string& name) {
  for (auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

void CudaNetwork::make_plan() {
  input_layout_ = full_layout(cfg_.channels, (int64_t)cfg_.height * cfg_.width);
  auto split_layout = [&](int C, int64_t HW, size_t i) {
    Layout x = full_layout(C, HW);
    if (ncols_ == 2) {
      if (C < 2)
        throw std::invalid_argument("layer " + std::to_string(i) + " (" + cfg_.layers[i].name +
                                    ") has " + std::to_string(C) +
                                    " output: model parallelism splits outputs over two columns");
      x.split = true;
      x.hi[0] = x.lo[1] = (C + 1) / 2;
    }
    return x;
  };
  Layout cur = input_layout_;
  plan_.clear();
  for (size_t i = 0; i < cfg_.layers.size(); i++) {
    const LayerSpec& l = cfg_.layers[i];
    const Shape& s = shapes_[i];
    LayerPlan p;
    p.in = cur;
    switch (l.type) {
      case LayerType::Conv: {
        p.out = split_layout(l.out, (int64_t)s.h * s.w, i);
        if (cur.split) {
          // Local when every group a column computes reads only channels that column holds.
          const int Cg = cur.C / l.groups, Og = l.out / l.groups;
          bool local = true;
          for (int c = 0; c < 2; c++)
            for (int g = p.out.lo[c] / Og; g < l.groups && g * Og < p.out.hi[c]; g++)
              local = local && g * Cg >= cur.lo[c] && (g + 1) * Cg <= cur.hi[c];
          if (!local) {
            p.gather = true;
            p.in = as_full(cur);
          }
        }
        break;
      }
      case LayerType::Linear:
        if (cur.split) {
          p.gather = true;
          p.in = as_full(cur);
        }
        p.out = split_layout(l.out, 1, i);
        break;
      case LayerType::Lrn: {
        const int Cb = cur.C / l.groups;
        bool local = true;
        for (int c = 0; c < 2; c++) local = local && cur.lo[c] % Cb == 0 && cur.hi[c] % Cb == 0;
        if (cur.split && !local) {
          p.gather = true;
          p.in = as_full(cur);
        }
        p.out = p.in;
        break;
      }
      case LayerType::MaxPool:
        p.out = cur;
        p.out.HW = (int64_t)s.h * s.w;
        break;
      case LayerType::Relu:
      case LayerType::Dropout: p.out = cur; break;
    }
    plan_.push_back(p);
    cur = p.out;
  }
}

void CudaNetwork::setup_devices(const DeviceOptions& options) {
  const int count = cuda_device_count_or_throw();
  devices_ = options.devices.empty() ? std::vector<int>{0} : options.devices;
  for (int d : devices_)
    if (d < 0 || d >= count)
      throw std::invalid_argument("CUDA device " + std::to_string(d) + " does not exist (" +
                                  std::to_string(count) + " device(s) visible)");
  if (options.parallel != "model" && options.parallel != "data")
    throw std::invalid_argument("parallel must be 'model' or 'data', not '" + options.parallel + "'");
  data_parallel_ = options.parallel == "data";
  precision_ = parse_precision(options.precision);
  // A tuning switch for benchmarks: how conv layers multiply forward (see conv.cu).
  if (const char* env = std::getenv("ALEXNET_CUDA_CONV_FORWARD")) {
    const std::string v = env;
    if (v == "batched") conv_forward_ = ConvForward::BATCHED;
    else if (v == "gemm") conv_forward_ = ConvForward::GEMM;
    else if (v != "auto" && !v.empty())
      throw std::invalid_argument("ALEXNET_CUDA_CONV_FORWARD must be auto, batched or gemm, not '" + v + "'");
  }
  sequential_ = options.sequential;
  if (!data_parallel_ && devices_.size() > 2)
    throw std::invalid_argument("model parallelism runs two columns: give one or two CUDA devices, not " +
                                std::to_string(devices_.size()) + " (or use parallel 'data')");
  ncols_ = data_parallel_ ? 1 : 2;
  if (sequential_ && ncols_ == 2 && devices_.size() == 2 && devices_[0] != devices_[1])
    throw std::invalid_argument("sequential runs both columns on one stream: give one device");
  make_plan();

  std::vector<std::vector<int>> layout;  // device per replica and column
  if (data_parallel_)
    for (int d : devices_) layout.push_back({d});
  else
    layout.push_back({devices_[0], devices_[devices_.size() > 1 ? 1 : 0]});
  // Peer access where the hardware has it; peer copies work without it (through the host).
  for (size_t a = 0; a < devices_.size(); a++)
    for (size_t b = 0; b < devices_.size(); b++) {
      if (devices_[a] == devices_[b]) continue;
      int can = 0;
      CUDA_CHECK(cudaDeviceCanAccessPeer(&can, devices_[a], devices_[b]));
      if (!can) continue;
      CUDA_CHECK(cudaSetDevice(devices_[a]));
      const cudaError_t e = cudaDeviceEnablePeerAccess(devices_[b], 0);
      if (e == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();
      else CUDA_CHECK(e);
    }

  reps_.resize(layout.size());
  for (size_t r = 0; r < layout.size(); r++) {
    reps_[r].cols.resize(layout[r].size());
    for (size_t c = 0; c < layout[r].size(); c++) {
      Column& col = reps_[r].cols[c];
      col.device = layout[r][c];
      CUDA_CHECK(cudaSetDevice(col.device));
      if (sequential_ && c > 0) {
        col.compute = col.copy = reps_[r].cols[0].compute;
      } else {
        col.own_compute = create_stream(cudaStreamNonBlocking);
        col.compute = col.own_compute;
        if (sequential_) {
          col.copy = col.compute;
        } else {
          col.own_copy = create_stream(cudaStreamNonBlocking);
          col.copy = col.own_copy;
        }
      }
      col.gemm.blas = create_blas();
      col.gemm.precision = precision_;
      col.gemm.conv_forward = conv_forward_;
      col.layers.resize(cfg_.layers.size());
      for (ColumnLayer& L : col.layers)
        for (Event* e : {&L.ev_out, &L.ev_sent, &L.ev_dx, &L.ev_bsent, &L.ev_grad})
          *e = create_event(cudaEventDisableTiming);
      for (Event* e : {&col.ev_logits, &col.ev_logits_sent, &col.ev_reduced, &col.ev_idle})
        *e = create_event(cudaEventDisableTiming);
      // This column's slice of every parameter: the rows of its outputs.
      col.params.resize(params_.size());
      for (size_t i = 0; i < cfg_.layers.size(); i++) {
        if (weight_of_[i] < 0) continue;
        const int lo = plan_[i].out.lo[c], hi = plan_[i].out.hi[c], O = cfg_.layers[i].out;
        const int64_t row = (int64_t)params_[weight_of_[i]].value.size() / O;
        ColumnParam& w = col.params[weight_of_[i]];
        ColumnParam& b = col.params[bias_of_[i]];
        w.offset = lo * row;
        w.count = (hi - lo) * row;
        b.offset = lo;
        b.count = hi - lo;
        for (ColumnParam* p : {&w, &b}) {
          p->value.resize(p->count);
          p->grad.resize(p->count);
          p->momentum.resize(p->count);
        }
      }
    }
  }
  if (reps_.size() > 1) {
    size_t total = 0;
    for (auto& p : params_) total += p.value.size();
    CUDA_CHECK(cudaSetDevice(reps_[0].cols[0].device));
    reps_[0].cols[0].reduce_recv.resize(total);
  }
}

void CudaNetwork::resize_batch(int N) {
  if (N == batch_) return;
  synchronize();  // queued work may still use the buffers resized below
  batch_ = 0;     // stays 0 if an allocation below fails
  const int R = (int)reps_.size();
  int n0 = 0;
  for (int r = 0; r < R; r++) {
    Replica& rep = reps_[r];
    rep.n0 = n0;
    rep.nb = N / R + (r < N % R ? 1 : 0);
    n0 += rep.nb;
    if (!rep.nb) continue;
    const size_t nb = rep.nb;
    int64_t largest = cfg_.classes;
    for (const LayerPlan& p : plan_) largest = std::max({largest, (int64_t)p.in.C * p.in.HW, (int64_t)p.out.C * p.out.HW});
    for (size_t c = 0; c < rep.cols.size(); c++) {
      Column& col = rep.cols[c];
      CUDA_CHECK(cudaSetDevice(col.device));
      if (c == 0 || col.device != rep.cols[0].device) {
        col.input.resize(nb * input_size());
        col.labels.resize(nb);
        col.input_ptr = col.input.data();
        col.labels_ptr = col.labels.data();
      } else {
        col.input_ptr = rep.cols[0].input.data();
        col.labels_ptr = rep.cols[0].labels.data();
      }
      for (size_t i = 0; i < plan_.size(); i++) {
        const LayerPlan& p = plan_[i];
        ColumnLayer& L = col.layers[i];
        const size_t n_out = nb * p.out.held(c) * p.out.HW;
        L.out.resize(n_out);
        const LayerType t = cfg_.layers[i].type;
        if (t == LayerType::Lrn || t == LayerType::Dropout) L.aux.resize(n_out);
        if (t == LayerType::MaxPool) L.argmax.resize(n_out);
        const bool params = t == LayerType::Conv || t == LayerType::Linear;
        if (p.gather) {  // the forward places the other column's half straight in in_full;
                         // recv takes its slice of the backward's partial input gradient
          const Layout& prev = plan_[i - 1].out;
          L.in_full.resize(nb * p.in.C * p.in.HW);
          L.recv.resize(nb * std::max(prev.held(0), prev.held(1)) * prev.HW);
        } else if (params && ncols_ == 2 && i > 0 && !p.in.split) {  // FULL input: all-reduce of the gradient
          L.recv.resize(nb * p.in.C * p.in.HW);
        }
      }
      col.grad_a.resize(nb * largest);
      col.grad_b.resize(nb * largest);
      col.probs.resize(nb * cfg_.classes);
      col.dlogits.resize(nb * cfg_.classes);
      col.losses.resize(nb);
      if (plan_.back().out.split) {
        col.logits_full.resize(nb * cfg_.classes);
        col.logits_recv.resize(nb * cfg_.classes);
      }
    }
  }
  if ((size_t)N > staging_images_) {  // pinned buffers grow only (allocating them is slow)
    for (void* p : {(void*)staging_, (void*)staging_labels_, (void*)logits_, (void*)losses_})
      if (p) CUDA_CHECK(cudaFreeHost(p));
    staging_ = nullptr;
    staging_labels_ = nullptr;
    logits_ = nullptr;
    losses_ = nullptr;
    staging_images_ = 0;
    auto pinned = [](void** p, size_t bytes) { CUDA_CHECK(cudaHostAlloc(p, bytes, cudaHostAllocPortable)); };
    pinned((void**)&staging_, sizeof(float) * (size_t)N * input_size());
    pinned((void**)&staging_labels_, sizeof(int32_t) * (size_t)N);
    pinned((void**)&logits_, sizeof(float) * (size_t)N * cfg_.classes);
    pinned((void**)&losses_, sizeof(double) * (size_t)N);
    staging_images_ = N;
  }
  std::memset(logits_, 0, sizeof(float) * (size_t)N * cfg_.classes);
  masks_.clear();
  for (size_t i = 0; i < cfg_.layers.size(); i++)
    if (cfg_.layers[i].type == LayerType::Dropout) masks_.emplace_back((size_t)N * shapes_[i].size());
  batch_ = N;
}

// Host -> every replica's columns, when the host arrays may have changed.
void CudaNetwork::upload_params() {
  if (!host_newer_) return;
  synchronize();
  for (Replica& rep : reps_)
    for (Column& col : rep.cols) {
      CUDA_CHECK(cudaSetDevice(col.device));
      for (size_t pi = 0; pi < params_.size(); pi++) {
        ColumnParam& cp = col.params[pi];
        if (!cp.count) continue;
        const size_t bytes = cp.count * sizeof(float);
        CUDA_CHECK(cudaMemcpy(cp.value.data(), params_[pi].value.data() + cp.offset, bytes, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(cp.grad.data(), params_[pi].grad.data() + cp.offset, bytes, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(cp.momentum.data(), params_[pi].momentum.data() + cp.offset, bytes, cudaMemcpyHostToDevice));
      }
    }
  host_newer_ = false;
}

// Replica 0's columns -> host (the replicas agree after every update).
void CudaNetwork::params_to_host() {
  if (!device_newer_) return;
  synchronize();
  for (Column& col : reps_[0].cols) {
    CUDA_CHECK(cudaSetDevice(col.device));
    for (size_t pi = 0; pi < params_.size(); pi++) {
      ColumnParam& cp = col.params[pi];
      if (!cp.count) continue;
      const size_t bytes = cp.count * sizeof(float);
      CUDA_CHECK(cudaMemcpy(params_[pi].value.data() + cp.offset, cp.value.data(), bytes, cudaMemcpyDeviceToHost));
      CUDA_CHECK(cudaMemcpy(params_[pi].grad.data() + cp.offset, cp.grad.data(), bytes, cudaMemcpyDeviceToHost));
      CUDA_CHECK(cudaMemcpy(params_[pi].momentum.data() + cp.offset, cp.momentum.data(), bytes, cudaMemcpyDeviceToHost));
    }
  }
  device_newer_ = false;
}

void CudaNetwork::synchronize() {
  for (Replica& rep : reps_)
    for (Column& col : rep.cols) {
      CUDA_CHECK(cudaSetDevice(col.device));
      CUDA_CHECK(cudaStreamSynchronize(col.compute));
      CUDA_CHECK(cudaStreamSynchronize(col.copy));
    }
}

// Queued on each column's compute stream, after its backward: no host sync.
void CudaNetwork::update(const SgdConfig& sgd) {
  check_lr_scale(sgd, params_.size());
  upload_params();
  for (Replica& rep : reps_)
    for (Column& col : rep.cols) {
      CUDA_CHECK(cudaSetDevice(col.device));
      for (size_t pi = 0; pi < col.params.size(); pi++) {
        ColumnParam& cp = col.params[pi];
        const float lr = sgd.lr_of(pi);
        if (cp.count && lr != 0.0f)  // lr 0: frozen
          sgd_update(cp.value.data(), cp.momentum.data(), cp.grad.data(), cp.count, lr,
                     sgd.momentum, sgd.weight_decay, col.compute);
      }
    }
  device_newer_ = true;
  counter_++;
}

float CudaNetwork::step(const float* images, const int32_t* labels, int N, const SgdConfig& sgd,
                        bool dropout) {
  load_batch(images, labels, N);
  return step_loaded(sgd, dropout);
}

// One host sync per step: the forward's, which brings the loss back to refuse a
// non-finite one before anything changes. The backward and the update are queued and
// run while the caller prepares the next batch.
float CudaNetwork::step_loaded(const SgdConfig& sgd, bool dropout) {
  check_lr_scale(sgd, params_.size());
  const float loss = forward_loaded(dropout);
  if (!std::isfinite(loss))
    throw non_finite_loss_error(loss, counter_);
  backward();
  update(sgd);
  return loss;
}

std::vector<DropoutMask> CudaNetwork::dropout_masks() {
  std::vector<DropoutMask> out;
  if (!last_train_ || !batch_) return out;
  synchronize();
  std::string owner = "input";
  size_t k = 0;
  for (size_t i = 0; i < cfg_.layers.size(); i++) {
    if (!cfg_.layers[i].name.empty()) owner = cfg_.layers[i].name;
    if (cfg_.layers[i].type != LayerType::Dropout) continue;
    const Layout& L = plan_[i].out;
    float* host = masks_[k++].data();
    for (Replica& rep : reps_) {
      if (!rep.nb) continue;
      for (size_t c = 0; c < rep.cols.size(); c++) {
        CUDA_CHECK(cudaSetDevice(rep.cols[c].device));
        const size_t f = sizeof(float), held = L.held(c);
        CUDA_CHECK(cudaMemcpy2D(host + ((int64_t)rep.n0 * L.C + L.lo[c]) * L.HW, L.C * L.HW * f,
                                rep.cols[c].layers[i].aux.data(), held * L.HW * f, held * L.HW * f,
                                rep.nb, cudaMemcpyDeviceToHost));
      }
    }
    out.push_back({"mask." + owner, host, batch_, shapes_[i].size()});
  }
  return out;
}

void CudaNetwork::copy_layer_output(size_t layer, float* out) {
  check_layer_output(cfg_, layer, batch_);
  synchronize();
  const Layout& L = plan_[layer].out;  // out is (batch, C, HW); a column holds (nb, held, HW)
  const size_t f = sizeof(float);
  for (Replica& rep : reps_) {
    if (!rep.nb) continue;
    for (size_t c = 0; c < rep.cols.size() && (c == 0 || L.split); c++) {  // FULL: column 0 holds it all
      CUDA_CHECK(cudaSetDevice(rep.cols[c].device));
      const size_t held = L.held((int)c);
      CUDA_CHECK(cudaMemcpy2D(out + ((int64_t)rep.n0 * L.C + L.lo[c]) * L.HW, L.C * L.HW * f,
                              rep.cols[c].layers[layer].out.data(), held * L.HW * f, held * L.HW * f,
                              rep.nb, cudaMemcpyDeviceToHost));
    }
  }
}

void CudaNetwork::set_layer_timing(bool on) {
  timing_ = on;
  if (!on || !timing_events_.empty()) return;
  CUDA_CHECK(cudaSetDevice(reps_[0].cols[0].device));
  std::vector<Event> events;  // all or none: a failure halfway leaves timing_events_ empty
  for (size_t k = 0; k < 4 * cfg_.layers.size(); k++) events.push_back(create_event(cudaEventDefault));
  timing_events_ = std::move(events);
}

void CudaNetwork::mark_layer(size_t slot) {
  if (!timing_) return;
  CUDA_CHECK(cudaSetDevice(reps_[0].cols[0].device));
  CUDA_CHECK(cudaEventRecord(timing_events_[slot], reps_[0].cols[0].compute));
}

std::vector<LayerTime> CudaNetwork::layer_times() {
  std::vector<LayerTime> out;
  if (timing_events_.empty()) return out;
  synchronize();
  CUDA_CHECK(cudaSetDevice(reps_[0].cols[0].device));
  auto elapsed = [&](size_t a) {
    float ms = -1.0f;
    if (cudaEventElapsedTime(&ms, timing_events_[a], timing_events_[a + 1]) != cudaSuccess) {
      cudaGetLastError();  // not recorded (no backward yet): reported as -1
      ms = -1.0f;
    }
    return (double)ms;
  };
  for (size_t i = 0; i < cfg_.layers.size(); i++) {
    LayerTime t;
    t.name = cfg_.layers[i].name.empty() ? std::to_string(i) : cfg_.layers[i].name;
    t.type = layer_type_name(cfg_.layers[i].type);
    t.forward_ms = elapsed(4 * i);
    t.backward_ms = elapsed(4 * i + 2);
    out.push_back(t);
  }
  return out;
}

}  // namespace cuda
}  // namespace alexnet
