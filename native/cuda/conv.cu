// Grouped convolution as im2col + cuBLAS GEMMs, the CPU reference's scheme (conv.cpp),
// over chunks of nb images so each GEMM is large. col is (R, nb*OHW), R = C/G*K*K:
//   col[r][b*OHW + p] = im2col(inp[n0+b], group g)
// Forward, two ways (GemmContext::conv_forward):
//   BATCHED: out is first filled with the bias, then one strided-batched GEMM per group
//     adds image b's product straight into NCHW (no staging pass):
//     out[n0+b][rows of g] (Og, OHW) += weight_g (Og, R) @ col[:, b*OHW : (b+1)*OHW]
//   GEMM: stage (Oc, nb*OHW) = weight_g @ col, one GEMM per group over all the chunk's
//     images, then one pass scatters it into NCHW adding the bias. Preferred when OHW is
//     not a multiple of 8 (every AlexNet layer): image b's slice of col then starts
//     unaligned, which keeps cuBLAS off its fastest kernels, and a wide N tiles better.
// Backward: stage (Oc, nb*OHW) = gather(dout) (the weight gradient needs the images
// side by side along its reduction dimension); dcol = weight_g^T @ stage -> col2im (one
// thread per input element, so sums run in a fixed order); dweight_g (+)= stage @ col^T,
// split over its long reduction dimension (matmul_split_k: a weight gradient has few
// outputs, so one GEMM would run on a handful of blocks).
// The bias gradient is a two-stage deterministic reduction of dout in double.
// BF16: im2col and the gather write bf16 (half the bytes), the weight is converted per
// call (it is small), and the GEMMs accumulate in fp32 into fp32 outputs.
//
// Index math: 3-D grids (x: a position within a plane, y: a row or channel, z: a group of
// images), so a thread decomposes its 32-bit in-plane index and its row once, then loops
// over its images with nothing left to divide; no 64-bit division anywhere.
// A column computes output channels [o0, o0+Oc) (see ConvDims); group g's rows there
// are [max(o0, g*Og), min(o0+Oc, (g+1)*Og)).
#include <cuda_bf16.h>

#include <algorithm>

#include "cuda_check.h"
#include "layers_cuda.h"

namespace alexnet {
namespace cuda {
namespace {

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ uint16_t from_float<uint16_t>(float v) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

// Threads per block for a plane of n positions: whole warps, at most 256.
unsigned plane_threads(int n) { return (unsigned)std::min(256, (n + 31) / 32 * 32); }
// A grid dimension (y or z) covering n, within CUDA's 65535 limit (kernels loop past it).
unsigned grid_yz(int n) { return (unsigned)std::min(n, 65535); }
// The grid of a per-plane kernel: x covers the plane's positions, y the rows (or
// channels), z splits the images only as far as needed for about 4096 blocks, so each
// thread walks many images with its index math done once.
dim3 plane_grid(int plane, unsigned threads, int rows, int images) {
  const unsigned x = (plane + threads - 1) / threads, y = grid_yz(rows);
  const unsigned z = (unsigned)std::max(1, std::min<int>(images, (int)(4096 / std::max(1u, x * y))));
  return dim3(x, y, z);
}

// col[r][b*OHW + p] = inp[n0+b][ci+c][oh*S-P+kh][ow*S-P+kw] (0 outside),
// r = (c*K + kh)*K + kw, p = oh*OW + ow. Grid: x positions p, y rows r, z images.
template <typename T>
__global__ void im2col_kernel(T* col, const float* inp, int n0, int nb, int Cin, int H, int W,
                              int ci, int R, int K, int S, int P, int OH, int OW) {
  const int ohw = OH * OW, p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= ohw) return;
  const int oh = p / OW, ow = p - oh * OW;
  const int64_t cols = (int64_t)nb * ohw, plane = (int64_t)H * W, image = (int64_t)Cin * plane;
  for (int r = blockIdx.y; r < R; r += gridDim.y) {
    const int kw = r % K, kh = (r / K) % K, c = r / (K * K);
    const int ih = oh * S - P + kh, iw = ow * S - P + kw;
    const bool inside = (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W;
    const float* src = inp + ((int64_t)n0 * Cin + ci + c) * plane + ih * W + iw;
    T* dst = col + r * cols + p;
#pragma unroll 4
    for (int b = blockIdx.z; b < nb; b += gridDim.z)
      dst[(int64_t)b * ohw] = from_float<T>(inside ? src[b * image] : 0.0f);
  }
}

// The adjoint: dinp[n0+b][ci+c][ih][iw] = sum over (kh, kw) of the col entries that read
// it, in (kh, kw) order as the CPU's col2im. Grid: x positions ih*W+iw, y channels, z images.
// The taps that reach (ih, iw) are kh = kh0, kh0+S, ... (oh = (ih+P-kh)/S falling by one
// each step) and likewise for w: found once per thread, with two divisions.
__global__ void col2im_kernel(float* dinp, const float* dcol, int n0, int nb, int Cin, int H, int W,
                              int ci, int Cg, int K, int S, int P, int OH, int OW) {
  const int hw = H * W, q = blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= hw) return;
  const int ih = q / W, iw = q - ih * W, ohw = OH * OW;
  const int64_t cols = (int64_t)nb * ohw;
  const int kh0 = (ih + P) % S, oh0 = (ih + P - kh0) / S;  // the first tap's row: kh0, oh0
  const int kw0 = (iw + P) % S, ow0 = (iw + P - kw0) / S;
  for (int c = blockIdx.y; c < Cg; c += gridDim.y)
    for (int b = blockIdx.z; b < nb; b += gridDim.z) {
      const float* d = dcol + (int64_t)c * K * K * cols + (int64_t)b * ohw;
      float sum = 0.0f;
      for (int kh = kh0, oh = oh0; kh < K; kh += S, oh--) {
        if (oh >= OH) continue;
        if (oh < 0) break;
        for (int kw = kw0, ow = ow0; kw < K; kw += S, ow--) {
          if (ow >= OW) continue;
          if (ow < 0) break;
          sum += d[(int64_t)(kh * K + kw) * cols + oh * OW + ow];
        }
      }
      dinp[((int64_t)(n0 + b) * Cin + ci + c) * hw + q] = sum;
    }
}

// out[n0+b][o][p] = bias[o]. Grid: x positions, y channels, z images.
__global__ void fill_bias_kernel(float* out, const float* bias, int n0, int nb, int Oc, int ohw) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= ohw) return;
  for (int b = blockIdx.z; b < nb; b += gridDim.z)
    for (int o = blockIdx.y; o < Oc; o += gridDim.y)
      out[((int64_t)(n0 + b) * Oc + o) * ohw + p] = bias[o];
}

// out[n0+b][o][p] = stage[o][b*OHW + p] + bias[o]. Grid: x positions, y channels, z images.
__global__ void scatter_bias_kernel(float* out, const float* stage, const float* bias, int n0, int nb, int Oc,
                                    int ohw) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= ohw) return;
  const int64_t cols = (int64_t)nb * ohw;
  for (int b = blockIdx.z; b < nb; b += gridDim.z)
    for (int o = blockIdx.y; o < Oc; o += gridDim.y)
      out[((int64_t)(n0 + b) * Oc + o) * ohw + p] = stage[o * cols + (int64_t)b * ohw + p] + bias[o];
}

// stage[o][b*OHW + p] = dout[n0+b][o][p]. Grid: x positions, y channels, z images.
template <typename T>
__global__ void gather_kernel(T* stage, const float* dout, int n0, int nb, int Oc, int ohw) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= ohw) return;
  const int64_t cols = (int64_t)nb * ohw;
  for (int b = blockIdx.z; b < nb; b += gridDim.z)
    for (int o = blockIdx.y; o < Oc; o += gridDim.y)
      stage[o * cols + (int64_t)b * ohw + p] = from_float<T>(dout[((int64_t)(n0 + b) * Oc + o) * ohw + p]);
}

// The bias gradient, stage 1: partial[o][s] = sum over images [s*per, (s+1)*per) and all
// positions of dout[n][o][p], in double. Grid: x slabs s, y channels o.
constexpr int kReduceThreads = 256;
__global__ void bias_grad_partial_kernel(double* partial, const float* dout, int N, int Oc, int ohw, int per) {
  __shared__ double part[kReduceThreads];
  const int s = blockIdx.x, n_end = min(N, (s + 1) * per);
  double sum = 0.0;
  for (int o = blockIdx.y; o < Oc; o += gridDim.y) {
    sum = 0.0;
    for (int n = s * per; n < n_end; n++) {
      const float* row = dout + ((int64_t)n * Oc + o) * ohw;
      for (int p = threadIdx.x; p < ohw; p += kReduceThreads) sum += row[p];
    }
    part[threadIdx.x] = sum;
    __syncthreads();
    for (int w = kReduceThreads / 2; w > 0; w >>= 1) {
      if ((int)threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
      __syncthreads();
    }
    if (threadIdx.x == 0) partial[(int64_t)o * gridDim.x + s] = part[0];
    __syncthreads();
  }
}

// Stage 2: dbias[o] = sum over s of partial[o][s], in slab order.
__global__ void bias_grad_final_kernel(float* dbias, const double* partial, int Oc, int slabs) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= Oc) return;
  double sum = 0.0;
  for (int s = 0; s < slabs; s++) sum += partial[(int64_t)o * slabs + s];
  dbias[o] = (float)sum;
}

// Images per chunk: the column buffer stays under 256M elements (1 GB in fp32).
struct Plan {
  int OH, OW, ohw, Cg, Og, R, nbmax;
  explicit Plan(const ConvDims& d)
      : OH(d.OH()), OW(d.OW()), ohw(d.OH() * d.OW()), Cg(d.C / d.G), Og(d.O / d.G),
        R(d.C / d.G * d.K * d.K), nbmax(1) {
    const int64_t cap = 256LL << 20;
    nbmax = (int)std::max<int64_t>(1, std::min<int64_t>(d.N, cap / std::max<int64_t>(1, (int64_t)R * ohw)));
  }
};

void check_dims(const ConvDims& d) {
  CUDA_ASSERT(d.N > 0 && d.G > 0 && d.C % d.G == 0 && d.O % d.G == 0);
  CUDA_ASSERT(d.o0 >= 0 && d.Oc > 0 && d.o0 + d.Oc <= d.O);
  CUDA_ASSERT(d.cin0 >= 0 && d.Cin > 0 && d.cin0 + d.Cin <= d.C);
  CUDA_ASSERT(d.OH() > 0 && d.OW() > 0);
  CUDA_ASSERT((int64_t)d.H * d.W < (1LL << 31) && (int64_t)d.OH() * d.OW() < (1LL << 31));
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

size_t groups_touched(const ConvDims& d, const Plan& pl) {
  size_t n = 0;
  for_each_group(d, pl, [&](int, int, int) { n++; });
  return n;
}

template <typename T>
void im2col(T* col, const float* inp, const ConvDims& d, const Plan& pl, int n0, int nb, int ci,
            cudaStream_t stream) {
  const unsigned t = plane_threads(pl.ohw);
  const dim3 grid = plane_grid(pl.ohw, t, pl.R, nb);
  im2col_kernel<T><<<grid, t, 0, stream>>>(col, inp, n0, nb, d.Cin, d.H, d.W, ci, pl.R, d.K, d.S, d.P,
                                           pl.OH, pl.OW);
  LAUNCH_CHECK("im2col_kernel");
}

template <typename T>
void gather(T* stage, const float* dout, const ConvDims& d, const Plan& pl, int n0, int nb, cudaStream_t stream) {
  const unsigned t = plane_threads(pl.ohw);
  const dim3 grid = plane_grid(pl.ohw, t, d.Oc, nb);
  gather_kernel<T><<<grid, t, 0, stream>>>(stage, dout, n0, nb, d.Oc, pl.ohw);
  LAUNCH_CHECK("gather_kernel");
}

void bias_grad(float* dbias, const float* dout, const ConvDims& d, const Plan& pl, GemmContext& g,
               cudaStream_t stream) {
  // About 4 images per slab: enough blocks to fill the GPU, each with a long contiguous run.
  const int slabs = std::max(1, std::min(64, d.N / 4)), per = (d.N + slabs - 1) / slabs;
  g.partial.resize((size_t)d.Oc * slabs);
  bias_grad_partial_kernel<<<dim3(slabs, grid_yz(d.Oc)), kReduceThreads, 0, stream>>>(
      g.partial.data(), dout, d.N, d.Oc, pl.ohw, per);
  LAUNCH_CHECK("bias_grad_partial_kernel");
  bias_grad_final_kernel<<<blocks_for(d.Oc), 256, 0, stream>>>(dbias, g.partial.data(), d.Oc, slabs);
  LAUNCH_CHECK("bias_grad_final_kernel");
}

}  // namespace

void conv_forward(float* out, const float* inp, const float* weight, const float* bias,
                  const ConvDims& d, GemmContext& g, cudaStream_t stream, ConvCache* keep) {
  check_dims(d);
  const Plan pl(d);
  const bool bf16 = g.precision == Precision::BF16;
  const bool batched = g.conv_forward == ConvForward::BATCHED ||
                       (g.conv_forward == ConvForward::AUTO && pl.ohw % 8 == 0);
  // Keep col for the backward when the whole batch is one chunk: group gi's col at gi*per.
  const bool keeping = keep && pl.nbmax >= d.N;
  const size_t per = (size_t)pl.R * pl.nbmax * pl.ohw;
  if (keep) keep->valid = false;
  g.bind(stream);
  if (bf16) {
    if (keeping) keep->col16.resize(groups_touched(d, pl) * per);
    else g.col16.resize(per);
    g.a16.resize((size_t)d.Oc * pl.R);
    to_bf16(g.a16.data(), weight, (int64_t)d.Oc * pl.R, stream);
  } else {
    if (keeping) keep->col.resize(groups_touched(d, pl) * per);
    else g.col.resize(per);
  }
  int gi = 0;  // the group's index among the column's, in for_each_group order
  auto colf = [&]() { return keeping ? keep->col.data() + gi * per : g.col.data(); };
  auto colh = [&]() { return keeping ? keep->col16.data() + gi * per : g.col16.data(); };
  if (!batched) g.stage.resize((size_t)d.Oc * pl.nbmax * pl.ohw);
  const unsigned t = plane_threads(pl.ohw);
  for (int n0 = 0; n0 < d.N; n0 += pl.nbmax) {
    const int nb = std::min(pl.nbmax, d.N - n0);
    const int64_t cols = (int64_t)nb * pl.ohw;
    const dim3 out_grid = plane_grid(pl.ohw, t, d.Oc, nb);
    gi = 0;
    if (!batched) {
      for_each_group(d, pl, [&](int lo, int m, int ci) {
        // stage rows [lo, lo+m) (m, cols) = weight rows (m, R) @ col (R, cols)
        float* C = g.stage.data() + lo * cols;
        if (bf16) {
          im2col(colh(), inp, d, pl, n0, nb, ci, stream);
          matmul_bf16(C, g.a16.data() + (int64_t)lo * pl.R, colh(), false, false, m, (int)cols, pl.R, pl.R,
                      (int)cols, (int)cols, 1.0f, 0.0f, g.blas);
        } else {
          im2col(colf(), inp, d, pl, n0, nb, ci, stream);
          matmul(C, weight + (int64_t)lo * pl.R, colf(), false, false, m, (int)cols, pl.R, pl.R, (int)cols,
                 (int)cols, 1.0f, 0.0f, g.blas);
        }
        gi++;
      });
      scatter_bias_kernel<<<out_grid, t, 0, stream>>>(out, g.stage.data(), bias, n0, nb, d.Oc, pl.ohw);
      LAUNCH_CHECK("scatter_bias_kernel");
      continue;
    }
    fill_bias_kernel<<<out_grid, t, 0, stream>>>(out, bias, n0, nb, d.Oc, pl.ohw);
    LAUNCH_CHECK("fill_bias_kernel");
    for_each_group(d, pl, [&](int lo, int m, int ci) {
      // For each image b: out[n0+b] rows [lo, lo+m) (m, OHW) += weight rows (m, R) @ col_b (R, OHW),
      // col_b = col + b*OHW with row stride cols.
      float* C = out + ((int64_t)n0 * d.Oc + lo) * pl.ohw;
      if (bf16) {
        im2col(colh(), inp, d, pl, n0, nb, ci, stream);
        matmul_batched(C, g.a16.data() + (int64_t)lo * pl.R, colh(), true, false, false, m, pl.ohw, pl.R,
                       pl.R, (int)cols, pl.ohw, 0, pl.ohw, (int64_t)d.Oc * pl.ohw, nb, 1.0f, 1.0f, g.blas);
      } else {
        im2col(colf(), inp, d, pl, n0, nb, ci, stream);
        matmul_batched(C, weight + (int64_t)lo * pl.R, colf(), false, false, false, m, pl.ohw, pl.R, pl.R,
                       (int)cols, pl.ohw, 0, pl.ohw, (int64_t)d.Oc * pl.ohw, nb, 1.0f, 1.0f, g.blas);
      }
      gi++;
    });
  }
  if (keeping) {
    keep->valid = true;
    keep->N = d.N;
  }
}

void conv_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                   const float* weight, const ConvDims& d, GemmContext& g, cudaStream_t stream,
                   cudaEvent_t dinp_ready, const ConvCache* kept) {
  check_dims(d);
  const Plan pl(d);
  const bool bf16 = g.precision == Precision::BF16;
  const size_t n_col = (size_t)pl.R * pl.nbmax * pl.ohw, n_stage = (size_t)d.Oc * pl.nbmax * pl.ohw;
  // The forward's col of this input, one chunk for the whole batch, every group.
  const bool reuse = kept && kept->valid && kept->N == d.N && pl.nbmax >= d.N &&
                     (bf16 ? kept->col16.size() : kept->col.size()) == groups_touched(d, pl) * n_col;
  g.bind(stream);
  if (bf16) {
    if (!reuse) g.col16.resize(n_col);
    g.stage16.resize(n_stage);
    g.a16.resize((size_t)d.Oc * pl.R);
    to_bf16(g.a16.data(), weight, (int64_t)d.Oc * pl.R, stream);
  } else {
    if (!reuse) g.col.resize(n_col);
    g.stage.resize(n_stage);
  }
  if (dinp) {
    g.dcol.resize(n_col);
    CUDA_CHECK(cudaMemsetAsync(dinp, 0, sizeof(float) * (size_t)d.N * d.Cin * d.H * d.W, stream));
  }
  bias_grad(dbias, dout, d, pl, g, stream);
  for (int n0 = 0; n0 < d.N; n0 += pl.nbmax) {
    const int nb = std::min(pl.nbmax, d.N - n0);
    const int cols = nb * pl.ohw;
    CUDA_ASSERT((int64_t)nb * pl.ohw < (1LL << 31));
    if (bf16) gather(g.stage16.data(), dout, d, pl, n0, nb, stream);
    else gather(g.stage.data(), dout, d, pl, n0, nb, stream);
    if (dinp) {
      for_each_group(d, pl, [&](int lo, int m, int ci) {
        // dcol (R, cols) = weight rows^T (R, m) @ stage rows (m, cols)
        if (bf16)
          matmul_bf16(g.dcol.data(), g.a16.data() + (int64_t)lo * pl.R, g.stage16.data() + (int64_t)lo * cols,
                      true, false, pl.R, cols, m, pl.R, cols, cols, 1.0f, 0.0f, g.blas);
        else
          matmul(g.dcol.data(), weight + (int64_t)lo * pl.R, g.stage.data() + (int64_t)lo * cols, true, false,
                 pl.R, cols, m, pl.R, cols, cols, 1.0f, 0.0f, g.blas);
        const unsigned t = plane_threads(d.H * d.W);
        const dim3 grid = plane_grid(d.H * d.W, t, pl.Cg, nb);
        col2im_kernel<<<grid, t, 0, stream>>>(dinp, g.dcol.data(), n0, nb, d.Cin, d.H, d.W, ci, pl.Cg, d.K,
                                              d.S, d.P, pl.OH, pl.OW);
        LAUNCH_CHECK("col2im_kernel");
      });
      if (dinp_ready && n0 + nb >= d.N) CUDA_CHECK(cudaEventRecord(dinp_ready, stream));
    }
    int gi = 0;
    for_each_group(d, pl, [&](int lo, int m, int ci) {
      // dweight rows (m, R) (+)= stage rows (m, cols) @ col^T (cols, R)
      const float beta = n0 == 0 ? 0.0f : 1.0f;
      if (bf16) {
        const uint16_t* col = reuse ? kept->col16.data() + gi * n_col : g.col16.data();
        if (!reuse) im2col(g.col16.data(), inp, d, pl, n0, nb, ci, stream);
        matmul_split_k(dweight + (int64_t)lo * pl.R, g.stage16.data() + (int64_t)lo * cols, col, true, m, pl.R,
                       cols, cols, cols, pl.R, beta, g, stream);
      } else {
        const float* col = reuse ? kept->col.data() + gi * n_col : g.col.data();
        if (!reuse) im2col(g.col.data(), inp, d, pl, n0, nb, ci, stream);
        matmul_split_k(dweight + (int64_t)lo * pl.R, g.stage.data() + (int64_t)lo * cols, col, false, m, pl.R,
                       cols, cols, cols, pl.R, beta, g, stream);
      }
      gi++;
    });
  }
  if (!dinp && dinp_ready) CUDA_CHECK(cudaEventRecord(dinp_ready, stream));
}

}  // namespace cuda
}  // namespace alexnet
