// Fully connected layer through OpenBLAS SGEMM (PyTorch's [out, in] weight layout).
#include <cblas.h>

#include "layers.h"

namespace alexnet {

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int I, int O) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int o = 0; o < O; o++) out[(int64_t)n * O + o] = bias[o];
  // out (N,O) += inp (N,I) @ weight^T (I,O)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, I, 1.0f, inp, I, weight, I, 1.0f, out,
              O);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int I, int O) {
  // dweight (O,I) = dout^T (O,N) @ inp (N,I)
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, N, 1.0f, dout, O, inp, I, 0.0f,
              dweight, I);
  // dinp (N,I) = dout (N,O) @ weight (O,I)
  if (dinp)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, I, O, 1.0f, dout, O, weight, I, 0.0f,
                dinp, I);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < O; o++) {
    double sum = 0.0;
    for (int n = 0; n < N; n++) sum += dout[(int64_t)n * O + o];
    dbias[o] = (float)sum;
  }
}

}  // namespace alexnet
