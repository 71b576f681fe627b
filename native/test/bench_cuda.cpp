// Standalone CUDA benchmark (no Node): training-step and inference images/s of a built-in
// model, median over iterations after a warm-up, for each placement on one GPU and each
// precision. The batch is uploaded once (as PyTorch benchmarks keep theirs on the GPU);
// train_upload_img_s also copies the batch from host memory every step, as the addon does.
//
// Placements ("placement_kind"):
//   two-columns  parallel "model": the paper's two columns, both on the device(s) given
//                (one GPU: two streams), with their gathers and reduce-scatters
//   one-column   parallel "data" on one device: one replica, one stream, no exchange
// Precisions: fp32, tf32, bf16 (GEMM inputs; see DeviceOptions::precision).
//
// Usage: bench_cuda [model=alexnet] [batch=128] [iters=10] [placement=all|model|data]
//                   [--layers] [--precisions=fp32,tf32,bf16]
//   devices from ALEXNET_CUDA_DEVICES (default 0). One JSON line per placement and
//   precision. --layers then prints one JSON line per layer for one column (sequential),
//   fp32 and bf16, averaged over a few steps (CudaNetwork::layer_times):
//   {"layer_profile":true,"precision":..,"index":..,"layer":..,"type":..,"forward_ms":..,"backward_ms":..}
//   --kernel-profile: instead of all that, one training step per precision (one column, one
//   stream, after two warm-up steps) between cudaProfilerStart and cudaProfilerStop, for
//   `ncu --profile-from-start off` (scripts/gpu-kernel-profile.sh).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>

#include "bench_util.h"
#include "cuda_network.h"
#include "rng.h"

// cudart's profiler range (cuda_profiler_api.h, which the PyPI toolkit lacks).
extern "C" cudaError_t cudaProfilerStart(void);
extern "C" cudaError_t cudaProfilerStop(void);

using namespace alexnet;
using clk = bench_clock;

static std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

// JSON string escaping for the few strings we print (GPU names, layer names).
static std::string js(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if ((unsigned char)c >= 0x20) out += c;
  }
  return out;
}

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::vector<std::string> pos;
  bool layers = false, kernel_profile = false;
  std::vector<std::string> precisions = {"fp32", "tf32", "bf16"};
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--layers") layers = true;
    else if (a == "--kernel-profile") kernel_profile = true;
    else if (a.rfind("--precisions=", 0) == 0) precisions = split(a.substr(13), ',');
    else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "bench_cuda: unknown flag %s\n", a.c_str());
      return 2;
    } else pos.push_back(a);
  }
  const std::string model = pos.size() > 0 ? pos[0] : "alexnet";
  const int batch = pos.size() > 1 ? std::atoi(pos[1].c_str()) : 128;
  const int iters = std::max(1, pos.size() > 2 ? std::atoi(pos[2].c_str()) : 10);
  const std::string which = pos.size() > 3 ? pos[3] : "all";
  if (batch < 1 || (which != "all" && which != "model" && which != "data")) {
    std::fprintf(stderr, "usage: bench_cuda [model] [batch>=1] [iters] [all|model|data] [--layers] [--precisions=..]\n");
    return 2;
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("SKIP bench_cuda: no CUDA device\n");
    return 77;
  }
  int failures = 0;
  try {
    std::vector<int> devices;
    if (const char* env = std::getenv("ALEXNET_CUDA_DEVICES"))
      for (const std::string& id : split(env, ',')) devices.push_back(std::atoi(id.c_str()));
    if (devices.empty()) devices = {0};
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, devices[0]));
    const NetConfig cfg = preset_config(model);
    std::vector<float> images((size_t)batch * cfg.channels * cfg.height * cfg.width);
    for (size_t i = 0; i < images.size(); i++) images[i] = (float)(50.0 * rng_normal(3, 4, 0, i));
    std::vector<int32_t> labels(batch);
    for (int n = 0; n < batch; n++) labels[n] = n % cfg.classes;
    SgdConfig sgd;
    // One column on one stream (each layer's and kernel's time is its own), the batch
    // loaded and two warm-up steps taken.
    auto one_column = [&](const std::string& precision) {
      DeviceOptions opt;
      opt.device = "cuda";
      opt.parallel = "data";
      opt.devices = {devices[0]};
      opt.sequential = true;
      opt.precision = precision;
      auto net = std::make_unique<cuda::CudaNetwork>(cfg, 1, opt);
      net->load_batch(images.data(), labels.data(), batch);
      for (int it = 0; it < 2; it++) net->step_loaded(sgd, true);
      net->synchronize();
      return net;
    };

    if (kernel_profile) {
      for (const std::string& precision : precisions) {
        auto owned = one_column(precision);
        cuda::CudaNetwork& net = *owned;
        CUDA_CHECK(cudaProfilerStart());
        net.step_loaded(sgd, true);
        net.synchronize();
        CUDA_CHECK(cudaProfilerStop());
        std::printf("{\"kernel_profile\":true,\"precision\":\"%s\",\"placement\":\"%s\"}\n", precision.c_str(),
                    js(net.device_name()).c_str());
      }
      return 0;
    }

    struct Placement {
      const char* kind;
      const char* parallel;
    };
    std::vector<Placement> placements;
    if (which != "data") placements.push_back({"two-columns", "model"});
    if (which != "model") placements.push_back({devices.size() > 1 ? "data-parallel" : "one-column", "data"});
    for (const Placement& pl : placements)
      for (const std::string& precision : precisions) {
        // One failing configuration (out of memory, a CUDA error) does not hide the others.
        try {
          DeviceOptions opt;
          opt.device = "cuda";
          opt.parallel = pl.parallel;
          opt.devices = devices;
          opt.precision = precision;
          cuda::CudaNetwork net(cfg, 1, opt);
          std::vector<double> train, infer, upload;
          net.load_batch(images.data(), labels.data(), batch);
          for (int it = 0; it < 3; it++) net.step_loaded(sgd, true);  // warm-up: allocations, cuBLAS heuristics
          net.synchronize();
          for (int it = 0; it < iters; it++) {
            auto t0 = clk::now();
            net.step_loaded(sgd, true);
            net.synchronize();  // step_loaded returns before its backward and update finish
            train.push_back(batch / seconds_since(t0));
          }
          net.forward_loaded(false);  // warm-up of the inference shapes
          for (int it = 0; it < iters; it++) {
            auto t0 = clk::now();
            net.forward_loaded(false);
            infer.push_back(batch / seconds_since(t0));
          }
          for (int it = 0; it < std::max(3, iters / 3); it++) {
            auto t0 = clk::now();
            net.step(images.data(), labels.data(), batch, sgd, true);
            net.synchronize();
            upload.push_back(batch / seconds_since(t0));
          }
          std::printf("{\"backend\":\"ours-cuda\",\"gpu\":\"%s\",\"placement\":\"%s\",\"placement_kind\":\"%s\","
                      "\"model\":\"%s\",\"batch\":%d,\"precision\":\"%s\",\"iters\":%d,\"train_img_s\":%.1f,"
                      "\"infer_img_s\":%.1f,\"train_upload_img_s\":%.1f}\n",
                      js(prop.name).c_str(), js(net.device_name()).c_str(), pl.kind, model.c_str(), batch,
                      precision.c_str(), iters, median(train), median(infer), median(upload));
        } catch (const std::exception& e) {
          failures++;
          std::fprintf(stderr, "bench_cuda: %s %s: %s\n", pl.kind, precision.c_str(), e.what());
          std::printf("{\"backend\":\"ours-cuda\",\"placement_kind\":\"%s\",\"model\":\"%s\",\"batch\":%d,"
                      "\"precision\":\"%s\",\"error\":\"%s\"}\n",
                      pl.kind, model.c_str(), batch, precision.c_str(), js(e.what()).c_str());
          cudaGetLastError();
        }
      }

    if (layers) {
      // One column, one stream: each layer's events bracket only its own work.
      const int steps = std::max(3, std::min(iters, 5));
      for (const char* precision : {"fp32", "bf16"}) {
        try {
          auto owned = one_column(precision);
          cuda::CudaNetwork& net = *owned;
          net.set_layer_timing(true);
          std::vector<double> fwd(cfg.layers.size(), 0.0), bwd(cfg.layers.size(), 0.0);
          std::vector<cuda::LayerTime> last;
          for (int it = 0; it < steps; it++) {
            net.step_loaded(sgd, true);
            last = net.layer_times();  // synchronizes
            for (size_t i = 0; i < last.size() && i < fwd.size(); i++) {
              fwd[i] += last[i].forward_ms / steps;
              bwd[i] += last[i].backward_ms / steps;
            }
          }
          net.set_layer_timing(false);
          for (size_t i = 0; i < last.size() && i < fwd.size(); i++)
            std::printf("{\"layer_profile\":true,\"backend\":\"ours-cuda\",\"placement_kind\":\"one-column\","
                        "\"model\":\"%s\",\"batch\":%d,\"precision\":\"%s\",\"steps\":%d,\"index\":%zu,"
                        "\"layer\":\"%s\",\"type\":\"%s\",\"forward_ms\":%.4f,\"backward_ms\":%.4f}\n",
                        model.c_str(), batch, precision, steps, i, js(last[i].name).c_str(),
                        js(last[i].type).c_str(), fwd[i], bwd[i]);
        } catch (const std::exception& e) {
          failures++;
          std::fprintf(stderr, "bench_cuda: layer profile %s: %s\n", precision, e.what());
          std::printf("{\"layer_profile\":true,\"backend\":\"ours-cuda\",\"precision\":\"%s\",\"error\":\"%s\"}\n",
                      precision, js(e.what()).c_str());
          cudaGetLastError();
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: %s\n", e.what());
    return 1;
  }
  return failures ? 1 : 0;
}
