// CudaNetwork: the network of network.h on CUDA, with the paper's two-GPU model
// parallelism. Same construction (the same initial weights as the CPU backend for the
// same seed), same forward/backward/update/step semantics, same RNG state (seed, step
// counter) and the same dropout masks.
//
// Columns. In "model" mode the network runs as two columns (replica 0, columns 0 and 1),
// one per device, or both on one device on their own streams: the same code either way.
// Every activation is either SPLIT (each column holds its half of the channels: conv and
// linear layers compute half their outputs per column, and relu, dropout, maxpool and
// per-column LRN stay inside a column) or FULL (both columns hold all channels). A layer
// that needs all channels of a SPLIT input (conv3 and the fully connected layers in the
// paper: a conv whose groups cross the split, every linear layer) first GATHERS it: each
// column peer-copies its half to the other. Backward, such a layer's input gradient is a
// partial sum per column; a REDUCE-SCATTER (peer-copy the other column's slice, add)
// makes it whole, and the copy overlaps the weight-gradient GEMMs. The logits are
// gathered too and both columns compute the softmax.
//
// In "data" mode each device holds a whole replica (one column) and a slice of the
// batch; after the backward the gradients are summed on replica 0 and broadcast back
// (peer copies, layer by layer as the backward produces them), and every replica applies
// the same update.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "cuda_check.h"
#include "device_array.h"
#include "handles.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {

// One activation's placement over the columns (ncols = 1: always FULL).
struct Layout {
  bool split = false;
  int C = 0;           // channels (features after a linear layer)
  int64_t HW = 1;
  int lo[2] = {0, 0}, hi[2] = {0, 0};  // channels column c holds
  int held(int c) const { return hi[c] - lo[c]; }
};

// What each layer does with the columns (identical for every replica).
struct LayerPlan {
  bool gather = false;   // gather the SPLIT input to FULL before this layer
  Layout in, out;        // the input as the layer sees it (after a gather), the output
};

struct ColumnParam {
  DeviceArray<float> value, grad, momentum;
  int64_t offset = 0, count = 0;  // the slice of the host Param arrays
};

struct ColumnLayer {
  DeviceArray<float> out, aux, in_full, recv;
  ConvCache col_cache;  // conv layers in training: the forward's im2col, for the backward
  DeviceArray<int32_t> argmax;
  Event ev_out, ev_sent, ev_dx, ev_bsent, ev_grad;
};

struct Column {
  int device = 0;
  // The streams this column created (first: destroyed after everything that uses them);
  // none when it runs on column 0's (sequential), and no copy stream of its own when
  // copies share the compute stream.
  Stream own_compute, own_copy;
  cudaStream_t compute = nullptr, copy = nullptr;  // the streams it runs on
  GemmContext gemm;  // the cuBLAS handle, the precision, the conv/linear scratch
  std::vector<ColumnParam> params;  // per network Param (count 0: not this layer's)
  std::vector<ColumnLayer> layers;
  DeviceArray<float> input, logits_full, logits_recv, probs, dlogits, grad_a, grad_b, reduce_recv;
  DeviceArray<int32_t> labels;
  DeviceArray<double> losses;
  const float* input_ptr = nullptr;     // input, or column 0's on the same device
  const int32_t* labels_ptr = nullptr;
  // ev_idle: recorded on the compute stream after the update; the other column's copy
  // stream waits on it before a forward gather writes into this column's buffers, which
  // the last step's backward may still be reading (there is no host sync after a step).
  Event ev_logits, ev_logits_sent, ev_reduced, ev_idle;
};

// Per-layer time of the last forward and backward (layer_times()).
struct LayerTime {
  std::string name, type;
  double forward_ms = 0, backward_ms = 0;
};

struct Replica {
  std::vector<Column> cols;
  int n0 = 0, nb = 0;  // this replica's slice of the batch
};

class CudaNetwork : public NetworkBackend {
 public:
  // Throws alexnet::Error CUDA_UNAVAILABLE when no CUDA device is usable (the message says
  // what to do) and std::invalid_argument for a bad config or options. What it created
  // before a failure releases itself (handles.h, device_array.h).
  CudaNetwork(const NetConfig& cfg, uint64_t seed, const DeviceOptions& options);
  ~CudaNetwork() override;
  CudaNetwork(const CudaNetwork&) = delete;
  CudaNetwork& operator=(const CudaNetwork&) = delete;

  std::string device_name() const override;
  const NetConfig& config() const override { return cfg_; }
  const std::vector<Shape>& shapes() const override { return shapes_; }
  std::vector<Param>& params() override { return params_; }
  Param* find_param(const std::string& name) override;
  void params_to_host() override;
  void params_written() override { host_newer_ = true; }
  int64_t input_size() const { return (int64_t)cfg_.channels * cfg_.height * cfg_.width; }

  // forward() returns once the loss and logits are on the host (one host sync); backward()
  // and update() only queue work (stream-ordered): reading parameters, gradients or masks
  // synchronizes first. A training step therefore syncs once, after the forward.
  float forward(const float* images, const int32_t* labels, int N, bool train) override;
  const float* logits() const override { return logits_; }
  // Synchronizes, then copies each replica's slice of the batch (and in model mode each
  // column's channels of a SPLIT output) to the host.
  void copy_layer_output(size_t layer, float* out) override;
  int batch() const override { return batch_; }
  void backward() override;
  void update(const SgdConfig& sgd) override;
  float step(const float* images, const int32_t* labels, int N, const SgdConfig& sgd,
             bool dropout) override;
  std::vector<DropoutMask> dropout_masks() override;

  uint64_t seed() const override { return seed_; }
  uint64_t step_counter() const override { return counter_; }
  void set_rng_state(uint64_t seed, uint64_t counter) override { seed_ = seed; counter_ = counter; }
  int threads() const override { return 1; }
  void set_threads(int) override {}

  // Benchmarks: upload a batch once, then run on it without the host copy.
  void load_batch(const float* images, const int32_t* labels, int N);
  float forward_loaded(bool train);
  float step_loaded(const SgdConfig& sgd, bool dropout);
  void synchronize();
  const std::vector<LayerPlan>& plan() const { return plan_; }
  // Profiling: events around every layer (its exchanges included) on replica 0 column 0's
  // compute stream. Exact with one stream (sequential, or one column per device); with two
  // streams a layer's time also holds its waits for the other column.
  void set_layer_timing(bool on);
  std::vector<LayerTime> layer_times();  // synchronizes

 private:
  void setup_devices(const DeviceOptions& options);
  void upload_batch(const float* images, const int32_t* labels);
  void make_plan();
  void resize_batch(int N);
  void upload_params();
  void forward_layer(size_t i, bool train);
  void gather(size_t i);
  void backward_layer(size_t i);
  void reduce_gradients(size_t i);
  void mark_layer(size_t slot);  // layer timing: slot 4*i + {0,1: forward start/end, 2,3: backward}

  NetConfig cfg_;
  std::vector<Shape> shapes_;
  std::vector<Param> params_;
  std::vector<int> weight_of_, bias_of_;  // per layer: param index or -1
  std::vector<LayerPlan> plan_;
  Layout input_layout_;
  std::vector<Replica> reps_;
  int ncols_ = 2;
  bool data_parallel_ = false, sequential_ = false;
  Precision precision_ = Precision::FP32;
  ConvForward conv_forward_ = ConvForward::AUTO;  // ALEXNET_CUDA_CONV_FORWARD
  std::vector<int> devices_;
  std::vector<std::vector<float>> masks_;  // host copies for dropout_masks()
  int batch_ = 0;
  bool have_labels_ = false, last_train_ = false, host_newer_ = true, device_newer_ = false;
  uint64_t seed_ = 0, counter_ = 0;
  // Pinned host staging for the batch upload (and the logits/losses coming back), so the
  // copies run at the bus's speed and asynchronously.
  float* staging_ = nullptr;
  int32_t* staging_labels_ = nullptr;
  size_t staging_images_ = 0;  // the batch size the pinned buffers hold
  float* logits_ = nullptr;  // (batch, classes), filled by forward
  double* losses_ = nullptr;
  // Layer timing (set_layer_timing): per layer, forward start/end and backward start/end.
  bool timing_ = false;
  std::vector<Event> timing_events_;
};

// The devices CUDA sees; throws the "no CUDA device" error when there are none.
int cuda_device_count_or_throw();

}  // namespace cuda
}  // namespace alexnet
