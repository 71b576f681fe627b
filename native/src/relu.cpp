// ReLU, f(x) = max(0, x): the paper's non-saturating nonlinearity. A NaN input stays NaN
// so that a diverging run is caught at the loss, not hidden.
#include "layers.h"

namespace alexnet {

void relu_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = inp[i] < 0.0f ? 0.0f : inp[i];  // NaN passes through, as in PyTorch
}

void relu_backward(float* dinp, const float* dout, const float* out, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

}  // namespace alexnet
