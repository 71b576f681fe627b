// Standalone network tests (no Node): whole-network gradients by finite differences,
// bitwise determinism, exact continuation after a state copy (what a checkpoint
// carries: weights, momentum, RNG seed and counter), NaN rejection, config errors, error
// codes, and weight initialisation bit-identical for any thread count.
// Run: native/build/test_network  (prints "N passed, N failed"; exit 1 on failure).
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "check.h"
#include "network.h"
#include "rng.h"

using namespace alexnet;

struct Batch {
  std::vector<float> images;
  std::vector<int32_t> labels;
};

static Batch make_batch(const NetConfig& cfg, int N, uint64_t seed) {
  Batch b;
  b.images.resize((size_t)N * cfg.channels * cfg.height * cfg.width);
  for (size_t i = 0; i < b.images.size(); i++) b.images[i] = (float)rng_normal(seed, 77, 0, i);
  for (int n = 0; n < N; n++) b.labels.push_back((int32_t)(rng_draw(seed, 78, 0, n) % cfg.classes));
  return b;
}

static bool same_state(Network& a, Network& b) {
  for (size_t i = 0; i < a.params().size(); i++) {
    const Param &p = a.params()[i], &q = b.params()[i];
    if (std::memcmp(p.value.data(), q.value.data(), p.value.size() * 4) ||
        std::memcmp(p.momentum.data(), q.momentum.data(), p.momentum.size() * 4))
      return false;
  }
  return a.step_counter() == b.step_counter();
}

static void test_network_gradients() {
  NetConfig cfg = preset_config("tiny");
  cfg.weight_std = 0.3f;  // large enough that every layer's gradient is far above rounding
  Network net(cfg, 5);
  Batch b = make_batch(cfg, 4, 9);
  net.forward(b.images.data(), b.labels.data(), 4, false);
  net.backward();
  for (Param& p : net.params()) {
    std::vector<double> num, ana;
    const size_t stride = std::max<size_t>(1, p.value.size() / 24);
    for (size_t i = 0; i < p.value.size(); i += stride) {
      const float keep = p.value[i], eps = 1e-3f;
      p.value[i] = keep + eps;
      const double up = net.forward(b.images.data(), b.labels.data(), 4, false);
      p.value[i] = keep - eps;
      const double down = net.forward(b.images.data(), b.labels.data(), 4, false);
      p.value[i] = keep;
      num.push_back((up - down) / (2.0 * eps));
      ana.push_back(p.grad[i]);
    }
    const double d = rel_distance(num, ana);
    CHECK(d < 2e-2, "network gradient %s differs from finite differences by %.3g", p.name.c_str(), d);
    std::printf("network gradcheck %-14s rel %.2e\n", p.name.c_str(), d);
  }
}

static void test_determinism_and_resume() {
  NetConfig cfg = preset_config("alexnet-32");
  Batch b1 = make_batch(cfg, 8, 1), b2 = make_batch(cfg, 8, 2);
  SgdConfig sgd;
  const Batch* batches[4] = {&b1, &b2, &b1, &b2};
  Network a(cfg, 11), b(cfg, 11);
  for (int t = 0; t < 4; t++) {
    a.step(batches[t]->images.data(), batches[t]->labels.data(), 8, sgd, true);
    b.step(batches[t]->images.data(), batches[t]->labels.data(), 8, sgd, true);
  }
  CHECK(same_state(a, b), "two runs with the same seed and data end bitwise identical");

  // Resume: copy weights, momentum and RNG state after 2 steps into a network built with
  // another seed, then run the remaining 2 steps.
  Network c(cfg, 11), d(cfg, 999);
  for (int t = 0; t < 2; t++) c.step(batches[t]->images.data(), batches[t]->labels.data(), 8, sgd, true);
  for (size_t i = 0; i < c.params().size(); i++) {
    d.params()[i].value = c.params()[i].value;
    d.params()[i].momentum = c.params()[i].momentum;
  }
  d.set_rng_state(c.seed(), c.step_counter());
  for (int t = 2; t < 4; t++) d.step(batches[t]->images.data(), batches[t]->labels.data(), 8, sgd, true);
  CHECK(same_state(a, d), "a run resumed from copied state ends bitwise identical to an uninterrupted one");

  Network e(cfg, 12);
  CHECK(!same_state(a, e), "another seed gives other weights");
}

static void test_nan_loss_is_refused() {
  NetConfig cfg = preset_config("tiny");
  Network net(cfg, 3);
  Batch b = make_batch(cfg, 2, 4);
  net.params()[0].value[0] = NAN;  // passes relu and maxpool, as in PyTorch
  const ZeroedFloats before = net.params()[2].value;
  bool threw = false;
  ErrorCode code = ErrorCode::Internal;
  try {
    net.step(b.images.data(), b.labels.data(), 2, SgdConfig{}, false);
  } catch (const std::runtime_error& e) {
    threw = std::string(e.what()).find("NaN") != std::string::npos;
    code = error_code_of(e);
  }
  CHECK(threw, "a NaN loss throws an error that says NaN");
  CHECK(code == ErrorCode::NonFiniteLoss, "a NaN loss throws code NON_FINITE_LOSS, not %s", error_code_name(code));
  CHECK(net.params()[2].value == before && net.step_counter() == 0,
        "a NaN loss leaves the weights and the step counter untouched");
}

static void test_config_errors() {
  auto message = [](NetConfig cfg) -> std::string {
    try {
      infer_shapes(cfg);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  NetConfig bad_groups = preset_config("alexnet");
  bad_groups.layers[4].groups = 3;
  CHECK(message(bad_groups).find("conv2") != std::string::npos, "bad groups names the layer: %s",
        message(bad_groups).c_str());
  NetConfig bad_classes = preset_config("alexnet");
  bad_classes.classes = 10;
  CHECK(message(bad_classes).find("classes") != std::string::npos, "class mismatch is reported");
  NetConfig too_small = preset_config("alexnet");
  too_small.height = too_small.width = 32;
  CHECK(!message(too_small).empty(), "an input too small for the layers is reported");
  bool unknown = false;
  try {
    parse_layer_type("softmax2");
  } catch (const std::invalid_argument& e) {
    unknown = std::string(e.what()).find("softmax2") != std::string::npos;
  }
  CHECK(unknown, "an unknown layer type is named in the error");
  const std::vector<Shape> shapes = infer_shapes(preset_config("alexnet"));
  CHECK(shapes[0].c == 96 && shapes[0].h == 55 && shapes[3].h == 27 && shapes[7].h == 13 &&
            shapes[14].h == 6 && shapes[14].size() == 9216,
        "the paper's AlexNet: 55x55x96 after conv1, 27, 13, 6x6x256 = 9216 into fc6");
  Network alex(preset_config("alexnet"), 1);
  size_t count = 0;
  for (auto& p : alex.params()) count += p.value.size();
  CHECK(count == 60965224, "the paper's AlexNet has 60,965,224 parameters (got %zu)", count);
}

// torchvision's AlexNet: its feature map sizes at 224 (the 6x6 where its adaptive average
// pool is the identity), its parameter count, and dropout before fc6 and fc7.
static void test_torchvision_preset() {
  const NetConfig cfg = preset_config("torchvision-alexnet");
  const std::vector<Shape> shapes = infer_shapes(cfg);
  CHECK(shapes[0].c == 64 && shapes[0].h == 55 && shapes[2].h == 27 && shapes[3].c == 192 &&
            shapes[5].h == 13 && shapes[12].c == 256 && shapes[12].h == 6 && shapes[12].size() == 9216,
        "torchvision-alexnet: 55x55x64 after conv1, 27, 13, 6x6x256 = 9216 into fc6");
  std::vector<std::string> order;
  for (const LayerSpec& l : cfg.layers)
    if (l.type == LayerType::Dropout || l.type == LayerType::Linear)
      order.push_back(l.type == LayerType::Dropout ? "dropout" : l.name);
  CHECK((order == std::vector<std::string>{"dropout", "fc6", "dropout", "fc7", "fc8"}),
        "torchvision-alexnet: dropout before fc6 and before fc7, as torchvision's classifier");
  bool no_lrn = true, one_column = true;
  for (const LayerSpec& l : cfg.layers) {
    no_lrn = no_lrn && l.type != LayerType::Lrn;
    one_column = one_column && l.groups == 1;
  }
  CHECK(no_lrn && one_column, "torchvision-alexnet: no LRN, every layer one column");
  Network net(cfg, 1);
  size_t count = 0;
  for (auto& p : net.params()) count += p.value.size();
  CHECK(count == 61100840, "torchvision-alexnet has torchvision's 61,100,840 parameters (got %zu)", count);
}

// What each kind of failure's code is: error.h's list, as the binding reports it.
static void test_error_codes() {
  auto code_of = [](auto fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      return error_code_of(e);
    }
    return ErrorCode::Internal;
  };
  const NetConfig cfg = preset_config("tiny");
  Network net(cfg, 3);
  CHECK(code_of([&] { net.backward(); }) == ErrorCode::BadState, "backward before a forward: BAD_STATE");
  CHECK(code_of([&] { net.layer_output(0); }) == ErrorCode::BadState, "a layer's output before a forward: BAD_STATE");
  CHECK(code_of([&] { preset_config("resnet"); }) == ErrorCode::BadArgument, "an unknown model: BAD_ARGUMENT");
  Batch b = make_batch(cfg, 2, 4);
  b.labels[1] = cfg.classes;
  CHECK(code_of([&] { net.forward(b.images.data(), b.labels.data(), 2, false); }) == ErrorCode::BadArgument,
        "a label out of range: BAD_ARGUMENT");
  net.forward(b.images.data(), nullptr, 2, false);
  CHECK(code_of([&] { net.layer_output(cfg.layers.size()); }) == ErrorCode::BadArgument,
        "a layer index past the last: BAD_ARGUMENT");
  CHECK(net.layer_output(cfg.layers.size() - 1) == net.logits(), "the last layer's output is the logits");
  CHECK(code_of([] { throw std::bad_alloc(); }) == ErrorCode::OutOfMemory, "std::bad_alloc: OUT_OF_MEMORY");
  CHECK(code_of([] { throw std::out_of_range("x"); }) == ErrorCode::Internal, "another exception: INTERNAL");
  CHECK(std::string(error_code_name(ErrorCode::NonFiniteLoss)) == "NON_FINITE_LOSS" &&
            std::string(error_code_name(ErrorCode::CudaUnavailable)) == "CUDA_UNAVAILABLE",
        "codes are named as JS sees them");
  // The values cross the CUDA backend's C boundary.
  CHECK(error_code_from_int((int)ErrorCode::OutOfMemory) == ErrorCode::OutOfMemory &&
            error_code_from_int(0) == ErrorCode::Internal && error_code_from_int(99) == ErrorCode::Internal,
        "a code survives the C boundary; a value that is none reads as INTERNAL");
}

// The weights' initialisation runs an OpenMP loop over a counter-based RNG (each draw a pure
// function of seed, stream and index): the same bits with 1 thread and with many. OpenMP's
// current thread count is what that loop uses (set_compute_threads), not the network's own.
static void test_init_thread_independent() {
  const int many = std::max(4, default_compute_threads());  // more threads than slices is fine too
  for (const char* model : {"alexnet-32", "alexnet"}) {
    const NetConfig cfg = preset_config(model);
    set_compute_threads(1);
    Network one(cfg, 17, 1);
    set_compute_threads(many);
    Network par(cfg, 17, many);
    bool same = one.params().size() == par.params().size();
    size_t big = 0;
    for (size_t i = 0; same && i < one.params().size(); i++) {
      const Param &p = one.params()[i], &q = par.params()[i];
      same = p.value.size() == q.value.size() &&
             std::memcmp(p.value.data(), q.value.data(), p.value.size() * sizeof(float)) == 0;
      if (p.value.size() >= 65536) big++;  // the loop goes parallel from 65536 weights
    }
    CHECK(big > 0, "%s has a tensor large enough for the parallel initialisation", model);
    CHECK(same, "%s: weights initialised with 1 thread and with %d are bit-identical", model, many);
    std::printf("init %-10s 1 thread vs %d: %s (%zu tensors parallel)\n", model, many,
                same ? "bit-identical" : "DIFFERENT", big);
  }
  set_compute_threads(0);
}

int main() {
  set_compute_threads(0);
  test_init_thread_independent();
  test_network_gradients();
  test_determinism_and_resume();
  test_nan_loss_is_refused();
  test_config_errors();
  test_torchvision_preset();
  test_error_codes();
  return check_summary();
}
