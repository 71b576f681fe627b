// Standalone CUDA benchmark (no Node): training-step and inference images/s of a built-in
// model, median over iterations after a warm-up, for fp32 and TF32 GEMMs. The batch is
// uploaded once (as PyTorch benchmarks keep theirs on the GPU); train_upload_img_s also
// copies the batch from host memory every step, as the addon does.
// Usage: bench_cuda [model=alexnet] [batch=128] [iters=10] [parallel=model|data]
//   devices from ALEXNET_CUDA_DEVICES (default 0). One JSON line per precision.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "cuda_network.h"
#include "bench_util.h"
#include "rng.h"

using namespace alexnet;
using clk = bench_clock;

int main(int argc, char** argv) {
  const std::string model = argc > 1 ? argv[1] : "alexnet";
  const int batch = argc > 2 ? std::atoi(argv[2]) : 128;
  const int iters = argc > 3 ? std::atoi(argv[3]) : 10;
  const std::string parallel = argc > 4 ? argv[4] : "model";
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("SKIP bench_cuda: no CUDA device\n");
    return 77;
  }
  try {
    DeviceOptions opt;
    opt.device = "cuda";
    opt.parallel = parallel;
    if (const char* env = std::getenv("ALEXNET_CUDA_DEVICES")) {
      std::stringstream ss(env);
      std::string id;
      while (std::getline(ss, id, ',')) opt.devices.push_back(std::atoi(id.c_str()));
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, opt.devices.empty() ? 0 : opt.devices[0]));
    const NetConfig cfg = preset_config(model);
    std::vector<float> images((size_t)batch * cfg.channels * cfg.height * cfg.width);
    for (size_t i = 0; i < images.size(); i++) images[i] = (float)(50.0 * rng_normal(3, 4, 0, i));
    std::vector<int32_t> labels(batch);
    for (int n = 0; n < batch; n++) labels[n] = n % cfg.classes;
    SgdConfig sgd;
    for (bool tf32 : {false, true}) {
      opt.tf32 = tf32;
      cuda::CudaNetwork net(cfg, 1, opt);
      std::vector<double> train, infer, upload;
      net.load_batch(images.data(), labels.data(), batch);
      for (int it = 0; it < 3; it++) net.step_loaded(sgd, true);  // warm-up: allocations, cuBLAS heuristics
      for (int it = 0; it < iters; it++) {
        auto t0 = clk::now();
        net.step_loaded(sgd, true);
        train.push_back(batch / seconds_since(t0));
      }
      for (int it = 0; it < iters; it++) {
        auto t0 = clk::now();
        net.forward_loaded(false);
        infer.push_back(batch / seconds_since(t0));
      }
      for (int it = 0; it < std::max(3, iters / 3); it++) {
        auto t0 = clk::now();
        net.step(images.data(), labels.data(), batch, sgd, true);
        upload.push_back(batch / seconds_since(t0));
      }
      std::printf("{\"backend\":\"ours-cuda\",\"gpu\":\"%s\",\"placement\":\"%s\",\"model\":\"%s\",\"batch\":%d,"
                  "\"precision\":\"%s\",\"iters\":%d,\"train_img_s\":%.1f,\"infer_img_s\":%.1f,\"train_upload_img_s\":%.1f}\n",
                  prop.name, net.device_name().c_str(), model.c_str(), batch, tf32 ? "tf32" : "fp32", iters,
                  median(train), median(infer), median(upload));
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
