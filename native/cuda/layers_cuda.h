// The layer set of the paper on CUDA: the same <layer>_forward / <layer>_backward pairs
// as the CPU reference (native/src/layers.h) with the same formulas, one .cu file per
// concept (conv, relu, lrn, maxpool, linear, dropout, softmax_xent, sgd, plus matmul and
// exchange for the GEMM wrapper and the column copies). Every launcher takes the stream
// it runs on (and the cuBLAS handle bound to it, where it multiplies), asserts its sizes
// and checks its launches; none synchronizes. Pointers are device memory.
//
// Column slices: a layer of the two-column network runs per column on a slice of its
// channels. Where a launcher takes `c0` (the global index of the first channel it holds)
// and a channel count smaller than the layer's, it computes that slice of the layer with
// the layer's global indexing (LRN blocks, dropout's counter index, conv groups).
//
// Letters as in layers.h: N batch, C channels, H/W height/width, O outputs, K kernel,
// S stride, P padding, G groups, OH/OW output size, I input features.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "device_array.h"

namespace alexnet {
namespace cuda {

// How the GEMMs multiply. Weights, activations, gradients and the update stay fp32 in
// every mode; the mode only changes what the tensor cores are fed:
//   FP32  plain fp32 SGEMM (the default: the reference's numbers to the last bits)
//   TF32  fp32 buffers, TF32 tensor-core products, fp32 accumulation (cuBLAS math mode)
//   BF16  the GEMM inputs are rounded to bf16 as they are written (im2col, the gathered
//         gradient) or converted just before (weights, fc inputs); fp32 accumulation and
//         fp32 outputs
enum class Precision { FP32, TF32, BF16 };
Precision parse_precision(const std::string& name);  // "fp32" | "tf32" | "bf16"; throws otherwise
const char* precision_name(Precision p);

// What a launcher that multiplies needs: the cuBLAS handle, the precision, and scratch
// buffers it grows as needed (one context per stream: the buffers are reused layer after
// layer in stream order).
// How conv_forward multiplies: one strided-batched GEMM per group writing NCHW straight
// (BATCHED), or one GEMM over the chunk's images side by side and a scatter pass into
// NCHW (GEMM). AUTO: BATCHED where an image's plane is a multiple of 8 elements (so each
// image's slice of col starts 16-byte aligned, as tensor-core kernels want), else GEMM.
enum class ConvForward { AUTO, BATCHED, GEMM };

struct GemmContext {
  BlasHandle blas;
  Precision precision = Precision::FP32;
  ConvForward conv_forward = ConvForward::AUTO;
  int sm_count = 0;  // multiprocessors of the device (0: not read yet), for split-K
  DeviceArray<float> col, dcol, stage, split;
  DeviceArray<double> partial;                     // the bias gradient's per-slab sums
  DeviceArray<uint16_t> col16, stage16, a16, b16;  // bf16 bit patterns
  // Binds the handle to the stream and sets its math mode for the precision.
  void bind(cudaStream_t stream);
};

// Row-major C (M,N) = alpha * op(A) @ op(B) + beta * C through cuBLAS (which is
// column-major: we compute C^T = op(B)^T op(A)^T). lda/ldb/ldc are row-major strides.
// fp32 inputs (SGEMM, TF32 per the handle's math mode) or bf16 inputs (fp32 accumulate).
void matmul(float* C, const float* A, const float* B, bool trans_a, bool trans_b, int M, int N,
            int K, int lda, int ldb, int ldc, float alpha, float beta, cublasHandle_t blas);
void matmul_bf16(float* C, const uint16_t* A, const uint16_t* B, bool trans_a, bool trans_b, int M,
                 int N, int K, int lda, int ldb, int ldc, float alpha, float beta,
                 cublasHandle_t blas);
// Strided batched: C_i (M,N) = alpha * op(A_i) @ op(B_i) + beta * C_i, X_i = X + i *
// strideX (a stride may be 0: one matrix for every i). bf16: A and B are bf16, else fp32
// (TF32 per the handle's math mode).
void matmul_batched(float* C, const void* A, const void* B, bool bf16, bool trans_a, bool trans_b, int M,
                    int N, int K, int lda, int ldb, int ldc, int64_t stride_a, int64_t stride_b,
                    int64_t stride_c, int batch, float alpha, float beta, cublasHandle_t blas);
// C (M,N) = A (M,K) @ B^T (N,K)^T + beta * C for a long K and a small M x N (a weight
// gradient: K runs over every image's positions), split over K so enough blocks run:
// slices of K into `g.split` by one batched GEMM, then summed in slice order (the same
// result every run). bf16 as matmul_batched.
void matmul_split_k(float* C, const void* A, const void* B, bool bf16, int M, int N, int K, int lda,
                    int ldb, int ldc, float beta, GemmContext& g, cudaStream_t stream);
// dst[i] = bf16(src[i]), round to nearest even (n elements).
void to_bf16(uint16_t* dst, const float* src, int64_t n, cudaStream_t stream);

// ---- conv.cu: grouped convolution as im2col + GEMM, on a column's slice ---------------
// The layer: input (N,C,H,W), weight (O, C/G, K, K), groups G. A column computes output
// channels [o0, o0+Oc) from an input buffer holding channels [cin0, cin0+Cin); every
// group it touches must have its input channels inside that buffer.
struct ConvDims {
  int N, C, H, W, O, K, S, P, G;
  int cin0, Cin;  // held input channels (whole layer: 0, C)
  int o0, Oc;     // computed output channels (whole layer: 0, O)
  int OH() const { return (H + 2 * P - K) / S + 1; }
  int OW() const { return (W + 2 * P - K) / S + 1; }
};
// The forward's im2col kept for the backward, whose weight gradient reads the same col:
// filled by conv_forward (given one) when the whole batch fits one chunk, for every group
// the column computes (memory: R x N*OHW elements per group, e.g. about 2.3 GB per column
// for the paper's AlexNet at batch 128 in fp32, half in bf16).
struct ConvCache {
  DeviceArray<float> col;
  DeviceArray<uint16_t> col16;
  bool valid = false;
  int N = 0;
};
// inp (N,Cin,H,W), weight (Oc, C/G, K, K) = rows [o0, o0+Oc) of the layer's weight,
// bias (Oc), out (N,Oc,OH,OW). keep: where to leave col for the backward (training), or null.
void conv_forward(float* out, const float* inp, const float* weight, const float* bias,
                  const ConvDims& d, GemmContext& g, cudaStream_t stream, ConvCache* keep = nullptr);
// dinp (N,Cin,H,W) or null; dweight (Oc, C/G, K, K); dbias (Oc); all overwritten. Input
// channels of the buffer that none of the column's groups read get a zero gradient.
// dinp_ready, when given, is recorded as soon as dinp is complete (before the weight
// gradient of the last chunk), so a copy of dinp can overlap the rest. kept: the
// forward's col of this same input, used instead of rebuilding it when valid.
void conv_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                   const float* weight, const ConvDims& d, GemmContext& g, cudaStream_t stream,
                   cudaEvent_t dinp_ready = nullptr, const ConvCache* kept = nullptr);

// ---- relu.cu ------------------------------------------------------------------------
void relu_forward(float* out, const float* inp, int64_t n, cudaStream_t stream);
void relu_backward(float* dinp, const float* dout, const float* out, int64_t n, cudaStream_t stream);

// ---- lrn.cu: the paper's LRN within G blocks of C/G channels --------------------------
// The buffers hold channels [c0, c0+Cc) of a layer with C channels; every LRN block must
// lie wholly inside or outside that range. inp/out/scale (N,Cc,H,W).
void lrn_forward(float* out, float* scale, const float* inp, int N, int Cc, int c0, int C, int H,
                 int W, int G, int size, float alpha, float beta, float k, cudaStream_t stream);
void lrn_backward(float* dinp, const float* dout, const float* inp, const float* out,
                  const float* scale, int N, int Cc, int c0, int C, int H, int W, int G, int size,
                  float alpha, float beta, cudaStream_t stream);

// ---- maxpool.cu: K x K stride S, no padding, floor; first maximum wins ---------------
// inp (N,C,H,W), out/argmax (N,C,OH,OW); argmax indexes the (H,W) plane.
void maxpool_forward(float* out, int32_t* argmax, const float* inp, int N, int C, int H, int W,
                     int K, int S, cudaStream_t stream);
void maxpool_backward(float* dinp, const float* dout, const int32_t* argmax, int N, int C, int H,
                      int W, int K, int S, cudaStream_t stream);

// ---- linear.cu: inp (N,I), weight (O,I) rows of the column, bias (O), out (N,O) -------
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int I, int O, GemmContext& g, cudaStream_t stream);
// dinp (N,I) or null. dinp_ready as in conv_backward.
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int I, int O,
                     GemmContext& g, cudaStream_t stream, cudaEvent_t dinp_ready = nullptr);

// ---- dropout.cu: inverted dropout, masks from rng.h's counter-based draws -------------
// The buffers hold samples [n0, n0+N) and channels [c0, c0+Cc) of a (batch, C, HW)
// tensor; element (n, c, p) draws index ((n0+n)*C + c0 + c)*HW + p, so masks equal the
// CPU's whatever the split over columns or replicas.
void dropout_forward(float* out, float* mask, const float* inp, int N, int n0, int Cc, int c0,
                     int C, int HW, float p, uint64_t seed, uint64_t rng_stream, uint64_t counter,
                     cudaStream_t stream);
void dropout_backward(float* dinp, const float* dout, const float* mask, int64_t n,
                      cudaStream_t stream);

// ---- softmax_xent.cu: logits/probs (N,K), labels (N) ----------------------------------
// losses (N) get each sample's loss in double; the caller sums them in order.
void softmax_xent_forward(float* probs, double* losses, const float* logits,
                          const int32_t* labels, int N, int K, cudaStream_t stream);
// dlogits = (probs - onehot) * scale; scale is 1/(the whole batch), which differs from
// 1/N when this is one replica's shard.
void softmax_xent_backward(float* dlogits, const float* probs, const int32_t* labels, int N, int K,
                           float scale, cudaStream_t stream);

// ---- sgd.cu: the paper's update as one fused kernel ------------------------------------
void sgd_update(float* w, float* v, const float* grad, int64_t n, float lr, float momentum,
                float weight_decay, cudaStream_t stream);

// ---- exchange.cu: copies and sums between the two columns' buffers ---------------------
// dst (N, Cd, HW) channels [dc0, dc0+Cc) <- src (N, Cs, HW) channels [sc0, sc0+Cc).
// Both on the current device (a 2D async copy).
void copy_channels(float* dst, int Cd, int dc0, const float* src, int Cs, int sc0, int N, int Cc,
                   int64_t HW, cudaStream_t stream);
// The same from device src_dev to device dst_dev (a 3D peer copy; a 2D copy when they
// are one device), issued on `stream` (of the current device).
void copy_channels_peer(float* dst, int dst_dev, int Cd, int dc0, const float* src, int src_dev, int Cs,
                        int sc0, int N, int Cc, int64_t HW, cudaStream_t stream);
// dst (N, Cc, HW) = full (N, C, HW) channels [c0, c0+Cc) + other (N, Cc, HW).
void add_channels(float* dst, const float* full, int C, int c0, const float* other, int N, int Cc,
                  int64_t HW, cudaStream_t stream);
// y += x (n)
void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream);

}  // namespace cuda
}  // namespace alexnet
