// The paper's SGD update with momentum and weight decay (see layers.h).
#include "layers.h"

namespace alexnet {

void sgd_update(float* w, float* v, const float* grad, int64_t n, float lr, float momentum,
                float weight_decay) {
  const float decay = weight_decay * lr;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    v[i] = momentum * v[i] - decay * w[i] - lr * grad[i];
    w[i] += v[i];
  }
}

}  // namespace alexnet
