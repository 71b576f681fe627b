// Standalone benchmark (no Node): training step and inference images/s of a built-in
// model, median over iterations after a warm-up. Also times each layer's forward so
// performance work knows where the time goes.
// Usage: bench_network [model=alexnet] [batch=128] [iters=3] [threads=0 (all cores)]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "network.h"
#include "bench_util.h"
#include "rng.h"

using namespace alexnet;
using clk = bench_clock;

int main(int argc, char** argv) {
  const std::string model = argc > 1 ? argv[1] : "alexnet";
  const int batch = argc > 2 ? std::atoi(argv[2]) : 128;
  const int iters = argc > 3 ? std::atoi(argv[3]) : 3;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 0;
  try {
    NetConfig cfg = preset_config(model);
    Network net(cfg, 1, threads);
    std::vector<float> images((size_t)batch * net.input_size());
    for (size_t i = 0; i < images.size(); i++) images[i] = (float)rng_normal(3, 4, 0, i);
    std::vector<int32_t> labels(batch);
    for (int n = 0; n < batch; n++) labels[n] = n % cfg.classes;
    SgdConfig sgd;
    std::vector<double> train, infer;
    for (int it = 0; it <= iters; it++) {  // iteration 0 is the warm-up
      auto t0 = clk::now();
      net.step(images.data(), labels.data(), batch, sgd, true);
      const double tt = seconds_since(t0);
      t0 = clk::now();
      net.forward(images.data(), nullptr, batch, false);
      const double ti = seconds_since(t0);
      if (it) {
        train.push_back(batch / tt);
        infer.push_back(batch / ti);
      }
    }
    // Per-layer share of the time over all iterations (training forward + backward).
    std::printf("%-4s %-8s %-8s %10s %10s\n", "#", "layer", "name", "fwd ms", "bwd ms");
    for (size_t i = 0; i < cfg.layers.size(); i++)
      std::printf("%-4zu %-8s %-8s %10.1f %10.1f\n", i, layer_type_name(cfg.layers[i].type),
                  cfg.layers[i].name.c_str(), 1e3 * net.forward_seconds()[i] / (2 * iters + 2),
                  1e3 * net.backward_seconds()[i] / (iters + 1));
    std::printf("{\"backend\":\"cpu\",\"model\":\"%s\",\"batch\":%d,\"threads\":%d,\"train_img_s\":%.2f,\"infer_img_s\":%.2f}\n",
                model.c_str(), batch, net.threads(), median(train), median(infer));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_network: %s\n", e.what());
    return 1;
  }
  return 0;
}
