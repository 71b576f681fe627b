// The layer set of the paper, CPU reference implementation (fp32).
// Every layer is a <layer>_forward / <layer>_backward pair, one file per concept
// (conv.cpp, relu.cpp, lrn.cpp, maxpool.cpp, linear.cpp, dropout.cpp,
// softmax_xent.cpp, sgd.cpp). Argument order: outputs, inputs, weights, sizes.
// Gradients carry a `d` prefix. Backward functions overwrite (never accumulate into)
// their outputs. All loops are deterministic: the same inputs give the same bits
// whatever the thread count, except where OpenBLAS's own blocking differs.
//
// Letters: N batch, C input channels, H/W input height/width, O output channels or
// features, K kernel size, S stride, P padding, G groups, OH/OW output height/width,
// I input features.
#pragma once
#include <cstdint>
#include <vector>

#include "gemm.h"

namespace alexnet {

// Scratch memory reused across calls (im2col columns, GEMM staging), and the precision the
// convolutions' GEMMs take (gemm.h).
struct Scratch {
  Precision precision = Precision::Fp32;
  std::vector<float> col, dcol, stage;
  std::vector<float> grad_slots;   // per-image conv backward: the weight gradient per slot
  std::vector<double> bias_slots;  // and the bias gradient per slot
};

inline int conv_out_size(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

// Grouped 2D convolution, PyTorch layout.
// inp (N,C,H,W), weight (O, C/G, K, K), bias (O), out (N,O,OH,OW).
// Group g reads input channels [g*C/G, (g+1)*C/G) and writes outputs [g*O/G, (g+1)*O/G):
// the paper's columns.
void conv_forward(float* out, const float* inp, const float* weight, const float* bias,
                  int N, int C, int H, int W, int O, int K, int S, int P, int G, Scratch& scratch);
// dinp may be null (first layer needs no input gradient).
void conv_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                   const float* weight, int N, int C, int H, int W, int O, int K, int S, int P, int G,
                   Scratch& scratch);
// What conv_forward/conv_backward do unless Winograd wins (winograd.h): im2col + SGEMM,
// per image or chunked (conv.cpp). Tests and benchmarks compare the two ways.
void conv_forward_im2col(float* out, const float* inp, const float* weight, const float* bias,
                         int N, int C, int H, int W, int O, int K, int S, int P, int G,
                         Scratch& scratch);
void conv_backward_im2col(float* dinp, float* dweight, float* dbias, const float* dout,
                          const float* inp, const float* weight, int N, int C, int H, int W, int O,
                          int K, int S, int P, int G, Scratch& scratch);

// ReLU, f(x) = max(0, x). inp/out (n). The backward reads the output: out > 0 <=> inp > 0.
void relu_forward(float* out, const float* inp, int64_t n);
void relu_backward(float* dinp, const float* dout, const float* out, int64_t n);

// Local response normalization, the paper's formula (alpha NOT divided by size):
//   b_i = a_i / (k + alpha * sum_{j=max(0,i-size/2)}^{min(Nb-1,i+size/2)} a_j^2)^beta
// applied within each of G contiguous blocks of Nb = C/G channels (the two columns
// normalize independently). PyTorch's LocalResponseNorm(size, alpha*size, beta, k) per block.
// inp/out/scale (N,C,H,W); scale keeps the denominator base for the backward.
void lrn_forward(float* out, float* scale, const float* inp, int N, int C, int H, int W, int G,
                 int size, float alpha, float beta, float k);
void lrn_backward(float* dinp, const float* dout, const float* inp, const float* out,
                  const float* scale, int N, int C, int H, int W, int G, int size, float alpha,
                  float beta);

// Max pooling, K x K window, stride S, no padding, floor output size (3x3 stride 2 in
// the paper: overlapping pooling). inp (N,C,H,W), out/argmax (N,C,OH,OW); argmax is the
// index of the chosen input within its (H,W) plane (first maximum wins).
void maxpool_forward(float* out, int32_t* argmax, const float* inp, int N, int C, int H, int W,
                     int K, int S);
void maxpool_backward(float* dinp, const float* dout, const int32_t* argmax, int N, int C, int H,
                      int W, int K, int S);

// Fully connected. inp (N,I), weight (O,I), bias (O), out (N,O). The GEMMs in `precision`
// (gemm.h), except a forward of up to 16 images: it streams the weights once, in fp32.
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int I, int O, Precision precision = Precision::Fp32);
// dinp may be null.
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int I, int O,
                     Precision precision = Precision::Fp32);

// Inverted dropout: keep with probability 1-p and scale by 1/(1-p) at training time,
// so that test time uses all neurons unscaled (equal to the paper's "multiply by 0.5").
// mask holds the multiplier (0 or 1/(1-p)) drawn from (seed, stream, counter, index).
// inp/out/mask (n).
void dropout_forward(float* out, float* mask, const float* inp, int64_t n, float p, uint64_t seed,
                     uint64_t stream, uint64_t counter);
void dropout_backward(float* dinp, const float* dout, const float* mask, int64_t n);

// Softmax cross-entropy, mean over the batch. logits/probs (N,K), labels (N) in [0,K).
// Returns the loss; probs keeps the softmax for the backward.
float softmax_xent_forward(float* probs, const float* logits, const int32_t* labels, int N, int K);
void softmax_xent_backward(float* dlogits, const float* probs, const int32_t* labels, int N, int K);

// The paper's update, exactly:
//   v <- momentum * v - weight_decay * lr * w - lr * grad;  w <- w + v
// (a learning-rate change does not rescale v, unlike torch.optim.SGD). w/v/grad (n).
void sgd_update(float* w, float* v, const float* grad, int64_t n, float lr, float momentum,
                float weight_decay);

// The thread count for our loops and for OpenBLAS. OpenMP's count is per calling
// thread, so call this on the thread that computes.
void set_compute_threads(int threads);
int default_compute_threads();

}  // namespace alexnet
