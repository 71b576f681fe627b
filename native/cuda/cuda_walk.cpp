// CudaNetwork's forward and backward walk over the layers, and the column exchanges:
//   gather          (forward, SPLIT -> FULL): each column peer-copies its channels to the
//                   other, which places them beside its own.
//   reduce-scatter  (backward of a gathered conv/linear): each column's input gradient is a
//                   partial sum over its outputs; it peer-copies the other column's channel
//                   slice there (on its copy stream, while its compute stream goes on to
//                   the weight gradient), and adds the slice it receives to its own.
//   all-reduce      (backward of a conv/linear whose input is FULL without a gather).
//   gradient sum    (data parallel: replica 0 adds every replica's gradients, layer by
//                   layer as they are ready, and copies the sum back).
// Every exchange is issued in two phases (all sends, then all receives), so with both
// columns on one stream (sequential) each wait finds its event already recorded.
//
// Host syncs: one per forward (the loss and logits come back to the host); backward and
// update are only queued. What the next step could overwrite while the last one still
// runs is ordered by events: a forward gather writes into the other column's buffers
// only after that column's ev_idle (recorded at the end of its backward), and the batch
// upload into an input buffer that column 1 shares waits for column 1's ev_idle.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "cuda_network.h"
#include "rng.h"

namespace alexnet {
namespace cuda {
namespace {

void wait(cudaStream_t s, cudaEvent_t e) { CUDA_CHECK(cudaStreamWaitEvent(s, e, 0)); }
void record(cudaEvent_t e, cudaStream_t s) { CUDA_CHECK(cudaEventRecord(e, s)); }
void peer_copy(float* dst, int dst_dev, const float* src, int src_dev, size_t n, cudaStream_t s) {
  if (n) CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_dev, src, src_dev, n * sizeof(float), s));
}

}  // namespace

void CudaNetwork::load_batch(const float* images, const int32_t* labels, int N) {
  if (N < 1) throw std::invalid_argument("batch size must be at least 1");
  if (labels) check_labels(labels, N, cfg_.classes);
  resize_batch(N);
  upload_batch(images, labels);
  have_labels_ = labels != nullptr;
}

// The batch goes through the pinned staging buffer in pieces of about 8 MB: the host
// copies piece k+1 (a few threads) while the DMA engine moves piece k. The staging buffer
// is free: its last DMA finished before the last forward's sync.
void CudaNetwork::upload_batch(const float* images, const int32_t* labels) {
  const int64_t per = input_size(), total = (int64_t)batch_ * per;
  const int64_t piece = std::max<int64_t>(per, ((int64_t)2 << 20) / per * per);  // whole images
  // Inputs that a later column shares are read by that column's last backward: wait for it.
  for (Replica& rep : reps_)
    for (size_t c = 1; c < rep.cols.size(); c++)
      if (rep.nb && rep.cols[c].input_ptr != rep.cols[c].input.data()) {
        CUDA_CHECK(cudaSetDevice(rep.cols[0].device));
        wait(rep.cols[0].compute, rep.cols[c].ev_idle);
      }
  const int threads = std::max(1, std::min(8, omp_get_max_threads()));
  for (int64_t off = 0; off < total; off += piece) {
    const int64_t len = std::min(piece, total - off);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; t++) {
      const int64_t a = off + len * t / threads, b = off + len * (t + 1) / threads;
      std::memcpy(staging_ + a, images + a, sizeof(float) * (b - a));
    }
    for (Replica& rep : reps_) {
      // The part of [off, off+len) in this replica's images.
      const int64_t lo = std::max(off, (int64_t)rep.n0 * per), hi = std::min(off + len, (int64_t)(rep.n0 + rep.nb) * per);
      if (hi <= lo) continue;
      for (Column& col : rep.cols) {
        if (col.input_ptr != col.input.data()) continue;  // shares column 0's upload
        CUDA_CHECK(cudaSetDevice(col.device));
        CUDA_CHECK(cudaMemcpyAsync(col.input.data() + (lo - (int64_t)rep.n0 * per), staging_ + lo,
                                   sizeof(float) * (hi - lo), cudaMemcpyHostToDevice, col.compute));
      }
    }
  }
  if (labels) std::memcpy(staging_labels_, labels, sizeof(int32_t) * batch_);
  for (Replica& rep : reps_) {
    if (!rep.nb) continue;
    if (labels)
      for (Column& col : rep.cols) {
        if (col.labels_ptr != col.labels.data()) continue;
        CUDA_CHECK(cudaSetDevice(col.device));
        CUDA_CHECK(cudaMemcpyAsync(col.labels.data(), staging_labels_ + rep.n0, sizeof(int32_t) * rep.nb,
                                   cudaMemcpyHostToDevice, col.compute));
      }
    // Column 1 on the same device reads column 0's upload: order it after the copy.
    if (rep.cols.size() > 1 && rep.cols[1].input_ptr != rep.cols[1].input.data()) {
      CUDA_CHECK(cudaSetDevice(rep.cols[0].device));
      record(rep.cols[0].layers[0].ev_out, rep.cols[0].compute);
      wait(rep.cols[1].compute, rep.cols[0].layers[0].ev_out);
    }
  }
}

float CudaNetwork::forward(const float* images, const int32_t* labels, int N, bool train) {
  load_batch(images, labels, N);
  return forward_loaded(train);
}

float CudaNetwork::forward_loaded(bool train) {
  if (!batch_) throw Error(ErrorCode::BadState, "forward_loaded needs load_batch first");
  upload_params();
  last_train_ = train;
  for (size_t i = 0; i < cfg_.layers.size(); i++) {
    mark_layer(4 * i);
    if (plan_[i].gather) gather(i);
    forward_layer(i, train);
    mark_layer(4 * i + 1);
  }
  const int K = cfg_.classes;
  const bool split = plan_.back().out.split;
  const size_t last = plan_.size() - 1;
  for (Replica& rep : reps_) {
    if (!rep.nb) continue;
    const size_t nb = rep.nb;
    if (split) {  // gather the logits: both columns compute the softmax
      const Layout& L = plan_.back().out;
      for (int c = 0; c < 2; c++) {
        Column& me = rep.cols[c];
        Column& other = rep.cols[1 - c];
        CUDA_CHECK(cudaSetDevice(me.device));
        record(me.ev_logits, me.compute);
        wait(me.copy, me.ev_logits);
        peer_copy(other.logits_recv.data(), other.device, me.layers[last].out.data(), me.device,
                  nb * L.held(c), me.copy);
        record(me.ev_logits_sent, me.copy);
      }
      for (int c = 0; c < 2; c++) {
        Column& me = rep.cols[c];
        const int o = 1 - c;
        CUDA_CHECK(cudaSetDevice(me.device));
        copy_channels(me.logits_full.data(), K, L.lo[c], me.layers[last].out.data(), L.held(c), 0,
                      rep.nb, L.held(c), 1, me.compute);
        wait(me.compute, rep.cols[o].ev_logits_sent);
        wait(me.compute, me.ev_logits_sent);
        copy_channels(me.logits_full.data(), K, L.lo[o], me.logits_recv.data(), L.held(o), 0,
                      rep.nb, L.held(o), 1, me.compute);
      }
    }
    for (Column& col : rep.cols) {
      CUDA_CHECK(cudaSetDevice(col.device));
      const float* logits = split ? col.logits_full.data() : col.layers[last].out.data();
      if (have_labels_)
        softmax_xent_forward(col.probs.data(), col.losses.data(), logits, col.labels_ptr, rep.nb, K,
                             col.compute);
    }
    Column& col0 = rep.cols[0];
    CUDA_CHECK(cudaSetDevice(col0.device));
    const float* logits = split ? col0.logits_full.data() : col0.layers[last].out.data();
    CUDA_CHECK(cudaMemcpyAsync(logits_ + (size_t)rep.n0 * K, logits, sizeof(float) * nb * K,
                               cudaMemcpyDeviceToHost, col0.compute));
    if (have_labels_)
      CUDA_CHECK(cudaMemcpyAsync(losses_ + rep.n0, col0.losses.data(), sizeof(double) * nb,
                                 cudaMemcpyDeviceToHost, col0.compute));
  }
  synchronize();
  if (!have_labels_) return NAN;
  double loss = 0.0;  // in sample order, as the CPU's
  for (int n = 0; n < batch_; n++) loss += losses_[n];
  return (float)(loss / batch_);
}

// Both columns send their half of layer i's input straight into the other's FULL input
// buffer (a strided peer copy), then each places its own half beside it.
void CudaNetwork::gather(size_t i) {
  const Layout& prev = plan_[i - 1].out;
  const LayerPlan& p = plan_[i];
  for (Replica& rep : reps_) {
    if (!rep.nb) continue;
    for (int c = 0; c < 2; c++) {
      Column& me = rep.cols[c];
      Column& other = rep.cols[1 - c];
      ColumnLayer& L = me.layers[i];
      CUDA_CHECK(cudaSetDevice(me.device));
      record(L.ev_out, me.compute);
      wait(me.copy, L.ev_out);
      wait(me.copy, other.ev_idle);  // the other's last backward has done reading in_full
      copy_channels_peer(other.layers[i].in_full.data(), other.device, p.in.C, prev.lo[c],
                         me.layers[i - 1].out.data(), me.device, prev.held(c), 0, rep.nb, prev.held(c),
                         prev.HW, me.copy);
      record(L.ev_sent, me.copy);
    }
    for (int c = 0; c < 2; c++) {
      Column& me = rep.cols[c];
      const int o = 1 - c;
      ColumnLayer& L = me.layers[i];
      CUDA_CHECK(cudaSetDevice(me.device));
      copy_channels(L.in_full.data(), p.in.C, prev.lo[c], me.layers[i - 1].out.data(), prev.held(c), 0,
                    rep.nb, prev.held(c), prev.HW, me.compute);
      wait(me.compute, rep.cols[o].layers[i].ev_sent);
      wait(me.compute, L.ev_sent);  // our send read layers[i-1].out: done before it changes
    }
  }
}

void CudaNetwork::forward_layer(size_t i, bool train) {
  const LayerSpec& l = cfg_.layers[i];
  const LayerPlan& p = plan_[i];
  const Shape in = i ? shapes_[i - 1] : Shape{cfg_.channels, cfg_.height, cfg_.width};
  for (Replica& rep : reps_) {
    if (!rep.nb) continue;
    for (size_t c = 0; c < rep.cols.size(); c++) {
      Column& col = rep.cols[c];
      ColumnLayer& L = col.layers[i];
      CUDA_CHECK(cudaSetDevice(col.device));
      const float* x = i == 0 ? col.input_ptr : p.gather ? L.in_full.data() : col.layers[i - 1].out.data();
      float* y = L.out.data();
      const int64_t n_out = (int64_t)rep.nb * p.out.held(c) * p.out.HW;
      switch (l.type) {
        case LayerType::Conv: {
          const ConvDims d{rep.nb, p.in.C, in.h, in.w, l.out, l.kernel, l.stride, l.pad, l.groups,
                           p.in.lo[c], p.in.held(c), p.out.lo[c], p.out.held(c)};
          // Training keeps the forward's im2col for the backward; an inference forward
          // leaves none (and marks an older one stale: the input changed).
          conv_forward(y, x, col.params[weight_of_[i]].value.data(), col.params[bias_of_[i]].value.data(),
                       d, col.gemm, col.compute, train ? &L.col_cache : nullptr);
          if (!train) L.col_cache.valid = false;
          break;
        }
        case LayerType::Linear:
          linear_forward(y, x, col.params[weight_of_[i]].value.data(), col.params[bias_of_[i]].value.data(),
                         rep.nb, (int)(p.in.C * p.in.HW), p.out.held(c), col.gemm, col.compute);
          break;
        case LayerType::Relu: relu_forward(y, x, n_out, col.compute); break;
        case LayerType::Lrn:
          lrn_forward(y, L.aux.data(), x, rep.nb, p.in.held(c), p.in.lo[c], p.in.C, in.h, in.w,
                      l.groups, l.size, l.alpha, l.beta, l.k, col.compute);
          break;
        case LayerType::MaxPool:
          maxpool_forward(y, L.argmax.data(), x, rep.nb, p.in.held(c), in.h, in.w, l.kernel, l.stride,
                          col.compute);
          break;
        case LayerType::Dropout:
          if (train)
            dropout_forward(y, L.aux.data(), x, rep.nb, rep.n0, p.in.held(c), p.in.lo[c], p.in.C,
                            (int)p.in.HW, l.p, seed_, RNG_STREAM_DROPOUT + i, counter_, col.compute);
          else
            CUDA_CHECK(cudaMemcpyAsync(y, x, sizeof(float) * n_out, cudaMemcpyDeviceToDevice, col.compute));
          break;
      }
    }
  }
}

void CudaNetwork::backward() {
  if (!batch_ || !have_labels_) throw Error(ErrorCode::BadState, "backward needs a forward with labels first");
  upload_params();
  const int K = cfg_.classes;
  const Layout& last = plan_.back().out;
  const float scale = 1.0f / (float)batch_;
  for (Replica& rep : reps_)
    for (size_t c = 0; c < rep.cols.size(); c++) {
      Column& col = rep.cols[c];
      CUDA_CHECK(cudaSetDevice(col.device));
      if (!rep.nb) {  // an empty slice of the batch adds zero gradients
        for (ColumnParam& cp : col.params)
          if (cp.count) CUDA_CHECK(cudaMemsetAsync(cp.grad.data(), 0, cp.count * sizeof(float), col.compute));
        continue;
      }
      if (last.split) {
        softmax_xent_backward(col.dlogits.data(), col.probs.data(), col.labels_ptr, rep.nb, K, scale, col.compute);
        copy_channels(col.grad_a.data(), last.held(c), 0, col.dlogits.data(), K, last.lo[c], rep.nb,
                      last.held(c), 1, col.compute);
      } else {
        softmax_xent_backward(col.grad_a.data(), col.probs.data(), col.labels_ptr, rep.nb, K, scale, col.compute);
      }
    }
  for (size_t i = cfg_.layers.size(); i-- > 0;) {
    mark_layer(4 * i + 2);
    backward_layer(i);
    if (reps_.size() > 1 && weight_of_[i] >= 0) reduce_gradients(i);
    mark_layer(4 * i + 3);
  }
  if (reps_.size() > 1)
    for (Replica& rep : reps_) {
      CUDA_CHECK(cudaSetDevice(rep.cols[0].device));
      wait(rep.cols[0].compute, reps_[0].cols[0].ev_reduced);
    }
  for (Replica& rep : reps_)
    for (Column& col : rep.cols) {
      CUDA_CHECK(cudaSetDevice(col.device));
      record(col.ev_idle, col.compute);
    }
  device_newer_ = true;  // no host sync: reading the gradients synchronizes first
}

// The gradient flowing in (complete, in layer i's output layout) is in grad_a; the
// gradient of layer i's input (complete, in layer i-1's output layout) ends in grad_a.
void CudaNetwork::backward_layer(size_t i) {
  const LayerSpec& l = cfg_.layers[i];
  const LayerPlan& p = plan_[i];
  const Shape in = i ? shapes_[i - 1] : Shape{cfg_.channels, cfg_.height, cfg_.width};
  const bool params = weight_of_[i] >= 0;
  // Each column's input gradient is a partial sum (over its outputs) of a FULL input.
  const bool partial = params && ncols_ == 2 && !p.in.split && i > 0;
  for (Replica& rep : reps_)
    for (size_t c = 0; c < rep.cols.size(); c++) {
      Column& col = rep.cols[c];
      ColumnLayer& L = col.layers[i];
      CUDA_CHECK(cudaSetDevice(col.device));
      if (!rep.nb) {
        if (params) record(L.ev_grad, col.compute);
        continue;
      }
      const float* x = i == 0 ? col.input_ptr : p.gather ? L.in_full.data() : col.layers[i - 1].out.data();
      const float* dout = col.grad_a.data();
      float* dx = i ? col.grad_b.data() : nullptr;  // nobody needs the gradient of the images
      const int64_t n_in = (int64_t)rep.nb * p.in.held(c) * p.in.HW;
      switch (l.type) {
        case LayerType::Conv: {
          const ConvDims d{rep.nb, p.in.C, in.h, in.w, l.out, l.kernel, l.stride, l.pad, l.groups,
                           p.in.lo[c], p.in.held(c), p.out.lo[c], p.out.held(c)};
          ColumnParam& w = col.params[weight_of_[i]];
          conv_backward(dx, w.grad.data(), col.params[bias_of_[i]].grad.data(), dout, x, w.value.data(), d,
                        col.gemm, col.compute, partial ? L.ev_dx.get() : nullptr, &L.col_cache);
          break;
        }
        case LayerType::Linear: {
          ColumnParam& w = col.params[weight_of_[i]];
          linear_backward(dx, w.grad.data(), col.params[bias_of_[i]].grad.data(), dout, x, w.value.data(),
                          rep.nb, (int)(p.in.C * p.in.HW), p.out.held(c), col.gemm, col.compute,
                          partial ? L.ev_dx.get() : nullptr);
          break;
        }
        case LayerType::Relu:
          if (dx) relu_backward(dx, dout, L.out.data(), n_in, col.compute);
          break;
        case LayerType::Lrn:
          if (dx)
            lrn_backward(dx, dout, x, L.out.data(), L.aux.data(), rep.nb, p.in.held(c), p.in.lo[c], p.in.C,
                         in.h, in.w, l.groups, l.size, l.alpha, l.beta, col.compute);
          break;
        case LayerType::MaxPool:
          if (dx)
            maxpool_backward(dx, dout, L.argmax.data(), rep.nb, p.in.held(c), in.h, in.w, l.kernel,
                             l.stride, col.compute);
          break;
        case LayerType::Dropout:
          if (dx) {
            if (last_train_) dropout_backward(dx, dout, L.aux.data(), n_in, col.compute);
            else CUDA_CHECK(cudaMemcpyAsync(dx, dout, sizeof(float) * n_in, cudaMemcpyDeviceToDevice, col.compute));
          }
          break;
      }
      if (params) record(L.ev_grad, col.compute);
      if (!partial) continue;
      // Send the other column its part of our partial input gradient (copy stream).
      const int o = 1 - (int)c;
      Column& other = rep.cols[o];
      wait(col.copy, L.ev_dx);
      if (p.gather) {  // the other's channels of our partial sum, straight into its recv
        const Layout& prev = plan_[i - 1].out;
        copy_channels_peer(other.layers[i].recv.data(), other.device, prev.held(o), 0, dx, col.device,
                           p.in.C, prev.lo[o], rep.nb, prev.held(o), prev.HW, col.copy);
      } else {
        peer_copy(other.layers[i].recv.data(), other.device, dx, col.device, n_in, col.copy);
      }
      record(L.ev_bsent, col.copy);
    }
  if (i == 0) return;
  for (Replica& rep : reps_) {
    if (!rep.nb) continue;
    for (size_t c = 0; c < rep.cols.size(); c++) {
      Column& col = rep.cols[c];
      ColumnLayer& L = col.layers[i];
      CUDA_CHECK(cudaSetDevice(col.device));
      const int o = 1 - (int)c;
      if (partial) {
        wait(col.compute, rep.cols[o].layers[i].ev_bsent);
        wait(col.compute, L.ev_bsent);  // our send has read grad_b
      }
      if (p.gather) {
        // FULL gradient -> this column's channels, into grad_a (the layer is done with it).
        const Layout& prev = plan_[i - 1].out;
        if (partial)
          add_channels(col.grad_a.data(), col.grad_b.data(), p.in.C, prev.lo[c], L.recv.data(), rep.nb,
                       prev.held(c), prev.HW, col.compute);
        else
          copy_channels(col.grad_a.data(), prev.held(c), 0, col.grad_b.data(), p.in.C, prev.lo[c], rep.nb,
                        prev.held(c), prev.HW, col.compute);
      } else {
        if (partial) add_inplace(col.grad_b.data(), L.recv.data(), (int64_t)rep.nb * p.in.C * p.in.HW, col.compute);
        std::swap(col.grad_a, col.grad_b);
      }
    }
  }
}

// Data parallel: replica 0 sums layer i's gradients over the replicas (in replica order)
// on its copy stream and copies the sum back, while the backward goes on.
void CudaNetwork::reduce_gradients(size_t i) {
  Column& root = reps_[0].cols[0];
  CUDA_CHECK(cudaSetDevice(root.device));
  for (Replica& rep : reps_) wait(root.copy, rep.cols[0].layers[i].ev_grad);
  for (int pi : {weight_of_[i], bias_of_[i]}) {
    ColumnParam& mine = root.params[pi];
    for (size_t r = 1; r < reps_.size(); r++) {
      Column& col = reps_[r].cols[0];
      peer_copy(root.reduce_recv.data(), root.device, col.params[pi].grad.data(), col.device, mine.count, root.copy);
      add_inplace(mine.grad.data(), root.reduce_recv.data(), mine.count, root.copy);
    }
    for (size_t r = 1; r < reps_.size(); r++) {
      Column& col = reps_[r].cols[0];
      peer_copy(col.params[pi].grad.data(), col.device, mine.grad.data(), root.device, mine.count, root.copy);
    }
  }
  record(root.ev_reduced, root.copy);
}

}  // namespace cuda
}  // namespace alexnet
