// Standalone benchmark of the 3x3 stride-1 convolutions: Winograd F(2x2, 3x3) against im2col
// per image, forward and backward, for every such layer of the built-in models at a batch,
// best of several runs each, the two alternating. What winograd_wins (winograd.cpp) is
// tuned from.
// Usage: bench_conv [batch=128] [runs=3] [threads=0 (all cores)]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_util.h"
#include "config.h"
#include "layers.h"
#include "rng.h"
#include "winograd.h"

using namespace alexnet;

int main(int argc, char** argv) {
  const int N = argc > 1 ? std::atoi(argv[1]) : 128;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 3;
  set_compute_threads(argc > 3 ? std::atoi(argv[3]) : 0);
  std::printf("%-18s %4s %4s %5s %3s %10s %10s %10s %10s %7s %7s %s\n", "layer", "Cg", "Og", "HxW", "G",
              "im2col fwd", "wino fwd", "im2col bwd", "wino bwd", "fwd x", "bwd x", "chosen");
  for (const std::string model : {"alexnet", "alexnet-64", "alexnet-32"}) {
    const NetConfig cfg = preset_config(model);
    int C = cfg.channels, H = cfg.height, W = cfg.width;
    for (const LayerSpec& l : cfg.layers) {
      const int C0 = C, H0 = H, W0 = W;
      if (l.type == LayerType::Conv) {
        C = l.out, H = conv_out_size(H, l.kernel, l.stride, l.pad), W = conv_out_size(W, l.kernel, l.stride, l.pad);
      } else if (l.type == LayerType::MaxPool) {
        H = (H - l.kernel) / l.stride + 1, W = (W - l.kernel) / l.stride + 1;
      } else if (l.type == LayerType::Linear) {
        break;
      }
      if (l.type != LayerType::Conv || l.kernel != 3 || l.stride != 1) continue;
      const int O = l.out, G = l.groups, P = l.pad;
      std::vector<float> x((size_t)N * C0 * H0 * W0), w((size_t)O * (C0 / G) * 9), b(O),
          y((size_t)N * O * H * W), dy(y.size()), dx(x.size()), dw(w.size()), db(O);
      for (size_t i = 0; i < x.size(); i++) x[i] = (float)rng_normal(1, 2, 0, i);
      for (size_t i = 0; i < w.size(); i++) w[i] = 0.05f * (float)rng_normal(1, 3, 0, i);
      for (size_t i = 0; i < dy.size(); i++) dy[i] = (float)rng_normal(1, 4, 0, i);
      Scratch s;
      double best[4] = {1e9, 1e9, 1e9, 1e9};
      for (int r = 0; r <= runs; r++) {  // run 0 warms up
        double t[4];
        auto t0 = bench_clock::now();
        conv_forward_im2col(y.data(), x.data(), w.data(), b.data(), N, C0, H0, W0, O, 3, 1, P, G, s);
        t[0] = seconds_since(t0);
        t0 = bench_clock::now();
        winograd_conv_forward(y.data(), x.data(), w.data(), b.data(), N, C0, H0, W0, O, P, G, s);
        t[1] = seconds_since(t0);
        t0 = bench_clock::now();
        conv_backward_im2col(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), N, C0, H0, W0, O, 3, 1, P, G, s);
        t[2] = seconds_since(t0);
        t0 = bench_clock::now();
        winograd_conv_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), N, C0, H0, W0, O, P, G, s);
        t[3] = seconds_since(t0);
        if (r)
          for (int i = 0; i < 4; i++) best[i] = std::min(best[i], t[i]);
      }
      const std::string name = model + " " + l.name;
      std::printf("%-18s %4d %4d %2dx%-2d %3d %10.2f %10.2f %10.2f %10.2f %7.2f %7.2f %s\n", name.c_str(), C0 / G,
                  O / G, H, W, G, 1e3 * best[0], 1e3 * best[1], 1e3 * best[2], 1e3 * best[3],
                  best[0] / best[1], best[2] / best[3],
                  winograd_wins(N, C0 / G, H0, W0, O / G, 3, 1, P) ? "winograd" : "im2col");
    }
  }
  return 0;
}
