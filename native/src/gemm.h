// The GEMM every layer calls: row-major C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) +
// beta * C, as cblas_sgemm, in the precision the network was asked for:
//   fp32: OpenBLAS SGEMM (the default; the parity, gradient and determinism tests hold it);
//   bf16: A and B rounded to bfloat16 (round to nearest even) and multiplied with fp32
//         accumulation by AVX512_BF16's dot products (gemm_bf16.cpp), where the CPU has
//         them (checked at run time); elsewhere the fp32 SGEMM.
// Inside a parallel region it runs on the calling thread; outside, on all threads.
#pragma once

namespace alexnet {

enum class Precision { Fp32, Bf16 };

// "fp32" | "bf16"; anything else throws std::invalid_argument naming it.
Precision parse_precision(const char* name);
const char* precision_name(Precision p);

// Whether bf16 GEMMs run on bf16 hardware here (AVX512_BF16), not the fp32 fallback.
bool bf16_gemm_available();

// The kernel family the fp32 SGEMM runs: OpenBLAS's core name ("SkylakeX", "Haswell",
// "Zen", ...; "Prescott" is its generic SSE3 code, several times slower), or "fallback".
const char* blas_core();

void gemm(Precision precision, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
          const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc);

// The bf16 GEMM itself (gemm_bf16.cpp); call only where bf16_gemm_available().
void gemm_bf16(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
               int lda, const float* B, int ldb, float beta, float* C, int ldc);

// A float rounded to the nearest bfloat16 (ties to even; NaN stays NaN), as the bf16 GEMM
// rounds its inputs, widened back to float.
float round_to_bf16(float x);

}  // namespace alexnet
