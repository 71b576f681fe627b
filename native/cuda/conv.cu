// Grouped convolution as im2col + cuBLAS SGEMM, the CPU reference's scheme (conv.cpp)
// over chunks of images so each GEMM is large:
//   col   (C/G*K*K, nb*OH*OW) = im2col(inp[n0:n0+nb], group g)
//   stage (Og, nb*OH*OW)      = weight_g (Og, C/G*K*K) @ col      -> scattered to NCHW + bias
// Backward: stage = gather(dout); dcol = weight_g^T @ stage -> col2im (one thread per
// input element, so sums run in a fixed order); dweight_g (+)= stage @ col^T.
// A column computes output channels [o0, o0+Oc) (see ConvDims); group g's rows there
// are [max(o0, g*Og), min(o0+Oc, (g+1)*Og)).
#include <algorithm>

#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

// col[r][b*OHW + oh*OW + ow] = inp[n0+b][ci+c][oh*S-P+kh][ow*S-P+kw] (0 outside),
// r = (c*K + kh)*K + kw. One thread per col element.
__global__ void im2col_kernel(float* col, const float* inp, int n0, int nb, int Cin, int H, int W,
                              int ci, int Cg, int K, int S, int P, int OH, int OW) {
  const int64_t ohw = (int64_t)OH * OW, cols = nb * ohw, total = (int64_t)Cg * K * K * cols;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = idx / cols, q = idx % cols;
    const int b = (int)(q / ohw), p = (int)(q % ohw), oh = p / OW, ow = p % OW;
    const int c = (int)(r / (K * K)), kh = (int)(r / K) % K, kw = (int)(r % K);
    const int ih = oh * S - P + kh, iw = ow * S - P + kw;
    col[idx] = (ih >= 0 && ih < H && iw >= 0 && iw < W)
                   ? inp[(((int64_t)(n0 + b) * Cin + ci + c) * H + ih) * W + iw]
                   : 0.0f;
  }
}

// The adjoint: dinp[n0+b][ci+c][ih][iw] = sum over (kh, kw) of the col entries that read
// it, in (kh, kw) order as the CPU's col2im. One thread per input element.
__global__ void col2im_kernel(float* dinp, const float* dcol, int n0, int nb, int Cin, int H, int W,
                              int ci, int Cg, int K, int S, int P, int OH, int OW) {
  const int64_t ohw = (int64_t)OH * OW, cols = nb * ohw, total = (int64_t)nb * Cg * H * W;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int iw = (int)(idx % W), ih = (int)((idx / W) % H), c = (int)((idx / ((int64_t)W * H)) % Cg);
    const int b = (int)(idx / ((int64_t)W * H * Cg));
    float sum = 0.0f;
    for (int kh = 0; kh < K; kh++) {
      const int th = ih + P - kh;
      if (th < 0 || th % S) continue;
      const int oh = th / S;
      if (oh >= OH) continue;
      for (int kw = 0; kw < K; kw++) {
        const int tw = iw + P - kw;
        if (tw < 0 || tw % S) continue;
        const int ow = tw / S;
        if (ow >= OW) continue;
        sum += dcol[(int64_t)((c * K + kh) * K + kw) * cols + b * ohw + (int64_t)oh * OW + ow];
      }
    }
    dinp[(((int64_t)(n0 + b) * Cin + ci + c) * H + ih) * W + iw] = sum;
  }
}

// out[n0+b][o][p] = stage[o][b*OHW + p] + bias[o] for the column's Oc channels.
__global__ void scatter_bias_kernel(float* out, const float* stage, const float* bias, int n0,
                                    int nb, int Oc, int64_t ohw) {
  const int64_t cols = nb * ohw, total = (int64_t)Oc * cols;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int o = (int)(idx / cols);
    const int64_t q = idx % cols, b = q / ohw, p = q % ohw;
    out[((n0 + b) * Oc + o) * ohw + p] = stage[idx] + bias[o];
  }
}

// stage[o][b*OHW + p] = dout[n0+b][o][p]
__global__ void gather_kernel(float* stage, const float* dout, int n0, int nb, int Oc, int64_t ohw) {
  const int64_t cols = nb * ohw, total = (int64_t)Oc * cols;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int o = (int)(idx / cols);
    const int64_t q = idx % cols, b = q / ohw, p = q % ohw;
    stage[idx] = dout[((n0 + b) * Oc + o) * ohw + p];
  }
}

// dbias[o] = sum over (n, p) of dout[n][o][p], in double; one block per channel.
__global__ void bias_grad_kernel(float* dbias, const float* dout, int N, int Oc, int64_t ohw) {
  __shared__ double part[256];
  const int o = blockIdx.x;
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < (int64_t)N * ohw; i += blockDim.x) {
    const int64_t n = i / ohw, p = i % ohw;
    sum += dout[(n * Oc + o) * ohw + p];
  }
  part[threadIdx.x] = sum;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) dbias[o] = (float)part[0];
}

// A grid-stride launch: enough blocks to fill the GPU, not one per element.
unsigned grid_for(int64_t n) { return (unsigned)std::min<int64_t>(blocks_for(n), 65535LL * 8); }

// Images per chunk: the column buffer stays under 128M floats (512 MB).
struct Plan {
  int OH, OW, Cg, Og, R, nbmax;
  int64_t ohw;
  explicit Plan(const ConvDims& d)
      : OH(d.OH()), OW(d.OW()), Cg(d.C / d.G), Og(d.O / d.G), R(d.C / d.G * d.K * d.K), nbmax(1),
        ohw((int64_t)d.OH() * d.OW()) {
    const int64_t cap = 128LL << 20;
    nbmax = (int)std::max<int64_t>(1, std::min<int64_t>(d.N, cap / std::max<int64_t>(1, R * ohw)));
  }
};

void check_dims(const ConvDims& d) {
  CUDA_ASSERT(d.N > 0 && d.G > 0 && d.C % d.G == 0 && d.O % d.G == 0);
  CUDA_ASSERT(d.o0 >= 0 && d.Oc > 0 && d.o0 + d.Oc <= d.O);
  CUDA_ASSERT(d.cin0 >= 0 && d.Cin > 0 && d.cin0 + d.Cin <= d.C);
  CUDA_ASSERT(d.OH() > 0 && d.OW() > 0);
}

// The groups a column touches, with its rows in each and the group's input offset
// within the held input buffer.
template <typename F>
void for_each_group(const ConvDims& d, const Plan& pl, F f) {
  for (int g = d.o0 / pl.Og; g < d.G && g * pl.Og < d.o0 + d.Oc; g++) {
    const int og0 = std::max(d.o0, g * pl.Og), og1 = std::min(d.o0 + d.Oc, (g + 1) * pl.Og);
    const int ci = g * pl.Cg - d.cin0;
    CUDA_ASSERT(ci >= 0 && ci + pl.Cg <= d.Cin);  // the group's inputs are in the buffer
    f(og0 - d.o0, og1 - og0, ci);
  }
}

}  // namespace

void conv_forward(float* out, const float* inp, const float* weight, const float* bias,
                  const ConvDims& d, ConvScratch& s, cublasHandle_t blas, cudaStream_t stream) {
  check_dims(d);
  const Plan pl(d);
  s.col.resize((size_t)pl.R * pl.nbmax * pl.ohw);
  s.stage.resize((size_t)d.Oc * pl.nbmax * pl.ohw);
  CUBLAS_CHECK(cublasSetStream(blas, stream));
  for (int n0 = 0; n0 < d.N; n0 += pl.nbmax) {
    const int nb = std::min(pl.nbmax, d.N - n0);
    const int64_t cols = nb * pl.ohw;
    for_each_group(d, pl, [&](int lo, int m, int ci) {
      const int64_t n_col = (int64_t)pl.R * cols;
      im2col_kernel<<<grid_for(n_col), 256, 0, stream>>>(s.col.data(), inp, n0, nb, d.Cin, d.H, d.W,
                                                         ci, pl.Cg, d.K, d.S, d.P, pl.OH, pl.OW);
      LAUNCH_CHECK("im2col_kernel");
      // stage rows [lo, lo+m) (m, cols) = weight rows (m, R) @ col (R, cols)
      matmul(s.stage.data() + lo * cols, weight + (int64_t)lo * pl.R, s.col.data(), false, false, m,
             (int)cols, pl.R, pl.R, (int)cols, (int)cols, 1.0f, 0.0f, blas);
    });
    scatter_bias_kernel<<<grid_for(d.Oc * cols), 256, 0, stream>>>(out, s.stage.data(), bias, n0, nb,
                                                                   d.Oc, pl.ohw);
    LAUNCH_CHECK("scatter_bias_kernel");
  }
}

void conv_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                   const float* weight, const ConvDims& d, ConvScratch& s, cublasHandle_t blas,
                   cudaStream_t stream, cudaEvent_t dinp_ready) {
  check_dims(d);
  const Plan pl(d);
  s.col.resize((size_t)pl.R * pl.nbmax * pl.ohw);
  s.stage.resize((size_t)d.Oc * pl.nbmax * pl.ohw);
  CUBLAS_CHECK(cublasSetStream(blas, stream));
  if (dinp) {
    s.dcol.resize(s.col.size());
    CUDA_CHECK(cudaMemsetAsync(dinp, 0, sizeof(float) * (size_t)d.N * d.Cin * d.H * d.W, stream));
  }
  bias_grad_kernel<<<d.Oc, 256, 0, stream>>>(dbias, dout, d.N, d.Oc, pl.ohw);
  LAUNCH_CHECK("bias_grad_kernel");
  for (int n0 = 0; n0 < d.N; n0 += pl.nbmax) {
    const int nb = std::min(pl.nbmax, d.N - n0);
    const int64_t cols = nb * pl.ohw;
    gather_kernel<<<grid_for(d.Oc * cols), 256, 0, stream>>>(s.stage.data(), dout, n0, nb, d.Oc, pl.ohw);
    LAUNCH_CHECK("gather_kernel");
    if (dinp) {
      for_each_group(d, pl, [&](int lo, int m, int ci) {
        // dcol (R, cols) = weight rows^T (R, m) @ stage rows (m, cols)
        matmul(s.dcol.data(), weight + (int64_t)lo * pl.R, s.stage.data() + lo * cols, true, false,
               pl.R, (int)cols, m, pl.R, (int)cols, (int)cols, 1.0f, 0.0f, blas);
        const int64_t n_in = (int64_t)nb * pl.Cg * d.H * d.W;
        col2im_kernel<<<grid_for(n_in), 256, 0, stream>>>(dinp, s.dcol.data(), n0, nb, d.Cin, d.H,
                                                          d.W, ci, pl.Cg, d.K, d.S, d.P, pl.OH, pl.OW);
        LAUNCH_CHECK("col2im_kernel");
      });
      if (dinp_ready && n0 + nb >= d.N) CUDA_CHECK(cudaEventRecord(dinp_ready, stream));
    }
    for_each_group(d, pl, [&](int lo, int m, int ci) {
      const int64_t n_col = (int64_t)pl.R * cols;
      im2col_kernel<<<grid_for(n_col), 256, 0, stream>>>(s.col.data(), inp, n0, nb, d.Cin, d.H, d.W,
                                                         ci, pl.Cg, d.K, d.S, d.P, pl.OH, pl.OW);
      LAUNCH_CHECK("im2col_kernel");
      // dweight rows (m, R) (+)= stage rows (m, cols) @ col^T (cols, R)
      matmul(dweight + (int64_t)lo * pl.R, s.stage.data() + lo * cols, s.col.data(), false, true, m,
             pl.R, (int)cols, (int)cols, (int)cols, pl.R, 1.0f, n0 == 0 ? 0.0f : 1.0f, blas);
    });
  }
  if (!dinp && dinp_ready) CUDA_CHECK(cudaEventRecord(dinp_ready, stream));
}

}  // namespace cuda
}  // namespace alexnet
