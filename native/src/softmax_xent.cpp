// Softmax cross-entropy (multinomial logistic regression), mean over the batch.
#include <cmath>
#include <vector>

#include "layers.h"

namespace alexnet {

float softmax_xent_forward(float* probs, const float* logits, const int32_t* labels, int N, int K) {
  // Per-sample losses summed in order afterwards: an OpenMP reduction would combine
  // partial sums in thread-arrival order and break bitwise reproducibility.
  std::vector<double> losses(N);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* z = logits + (int64_t)n * K;
    float* q = probs + (int64_t)n * K;
    float m = z[0];
    for (int k = 1; k < K; k++) m = z[k] > m ? z[k] : m;
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += std::exp((double)(z[k] - m));
    const double log_sum = std::log(sum);
    for (int k = 0; k < K; k++) q[k] = (float)std::exp((double)(z[k] - m) - log_sum);
    losses[n] = log_sum - (double)(z[labels[n]] - m);
  }
  double loss = 0.0;
  for (int n = 0; n < N; n++) loss += losses[n];
  return (float)(loss / N);
}

void softmax_xent_backward(float* dlogits, const float* probs, const int32_t* labels, int N, int K) {
  const float inv_n = 1.0f / (float)N;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      dlogits[(int64_t)n * K + k] =
          (probs[(int64_t)n * K + k] - (k == labels[n] ? 1.0f : 0.0f)) * inv_n;
}

}  // namespace alexnet
