// 3x3 stride-1 grouped convolutions by Winograd's F(2x2, 3x3) (winograd.cpp): the same
// arguments and results as conv_forward/conv_backward (layers.h), to within float rounding
// (1e-6 relative here; the direct convolution is the reference in test_layers).
#pragma once
#include "layers.h"

namespace alexnet {

// Whether conv_forward/conv_backward take the Winograd way: 3x3 kernels, stride 1, at
// least one image per thread (threads take whole images), and where it wins (see
// winograd.cpp: channels per group and output size large enough for its GEMMs).
bool winograd_wins(int N, int Cg, int H, int W, int Og, int K, int S, int P);

void winograd_conv_forward(float* out, const float* inp, const float* weight, const float* bias,
                           int N, int C, int H, int W, int O, int P, int G, Scratch& scratch);
// dinp may be null.
void winograd_conv_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                            const float* inp, const float* weight, int N, int C, int H, int W,
                            int O, int P, int G, Scratch& scratch);

}  // namespace alexnet
