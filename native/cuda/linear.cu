// Fully connected layer through cuBLAS GEMMs (PyTorch's [out, in] weight layout), as
// linear.cpp. A column passes its rows of the weight and gets its slice of the outputs.
// BF16: the GEMM inputs (activations, weight, output gradient) are converted to bf16
// just before each product, into the context's scratch; outputs stay fp32.
#include <algorithm>

#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

// out[n][o] = bias[o]
__global__ void fill_bias_kernel(float* out, const float* bias, int N, int O) {
  const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (idx < (int64_t)N * O) out[idx] = bias[idx % O];
}

// dbias[o] = sum_n dout[n][o] in double, in sample order (the CPU's sum exactly).
__global__ void bias_grad_kernel(float* dbias, const float* dout, int N, int O) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= O) return;
  double sum = 0.0;
  for (int n = 0; n < N; n++) sum += dout[(int64_t)n * O + o];
  dbias[o] = (float)sum;
}

}  // namespace

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int I, int O, GemmContext& g, cudaStream_t stream) {
  CUDA_ASSERT(N > 0 && I > 0 && O > 0);
  fill_bias_kernel<<<blocks_for((int64_t)N * O), 256, 0, stream>>>(out, bias, N, O);
  LAUNCH_CHECK("fill_bias_kernel");
  g.bind(stream);
  // out (N,O) += inp (N,I) @ weight^T (I,O)
  if (g.precision == Precision::BF16) {
    g.a16.resize((size_t)N * I);
    g.b16.resize((size_t)O * I);
    to_bf16(g.a16.data(), inp, (int64_t)N * I, stream);
    to_bf16(g.b16.data(), weight, (int64_t)O * I, stream);
    matmul_bf16(out, g.a16.data(), g.b16.data(), false, true, N, O, I, I, I, O, 1.0f, 1.0f, g.blas);
  } else {
    matmul(out, inp, weight, false, true, N, O, I, I, I, O, 1.0f, 1.0f, g.blas);
  }
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int I, int O,
                     GemmContext& g, cudaStream_t stream, cudaEvent_t dinp_ready) {
  CUDA_ASSERT(N > 0 && I > 0 && O > 0);
  g.bind(stream);
  if (g.precision == Precision::BF16) {
    g.a16.resize((size_t)N * O);
    g.b16.resize((size_t)std::max(O, N) * I);
    to_bf16(g.a16.data(), dout, (int64_t)N * O, stream);
    if (dinp) {  // dinp (N,I) = dout (N,O) @ weight (O,I), first so its copy overlaps the rest
      to_bf16(g.b16.data(), weight, (int64_t)O * I, stream);
      matmul_bf16(dinp, g.a16.data(), g.b16.data(), false, false, N, I, O, O, I, I, 1.0f, 0.0f, g.blas);
    }
    if (dinp_ready) CUDA_CHECK(cudaEventRecord(dinp_ready, stream));
    // dweight (O,I) = dout^T (O,N) @ inp (N,I); b16 is reused in stream order
    to_bf16(g.b16.data(), inp, (int64_t)N * I, stream);
    matmul_bf16(dweight, g.a16.data(), g.b16.data(), true, false, O, I, N, O, I, I, 1.0f, 0.0f, g.blas);
  } else {
    if (dinp) matmul(dinp, dout, weight, false, false, N, I, O, O, I, I, 1.0f, 0.0f, g.blas);
    if (dinp_ready) CUDA_CHECK(cudaEventRecord(dinp_ready, stream));
    matmul(dweight, dout, inp, true, false, O, I, N, O, I, I, 1.0f, 0.0f, g.blas);
  }
  bias_grad_kernel<<<blocks_for(O), 256, 0, stream>>>(dbias, dout, N, O);
  LAUNCH_CHECK("bias_grad_kernel");
}

}  // namespace cuda
}  // namespace alexnet
