// The layers' GEMM: fp32 through OpenBLAS, bf16 through gemm_bf16.cpp where the CPU can.
#include "gemm.h"

#include <cblas.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace alexnet {

Precision parse_precision(const char* name) {
  const std::string s = name ? name : "";
  if (s == "fp32") return Precision::Fp32;
  if (s == "bf16") return Precision::Bf16;
  throw std::invalid_argument("precision must be 'fp32' or 'bf16' on the CPU, not '" + s + "'");
}

const char* precision_name(Precision p) { return p == Precision::Bf16 ? "bf16" : "fp32"; }

bool bf16_gemm_available() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool available = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
  return available;
#else
  return false;
#endif
}

const char* blas_core() {
#ifdef OPENBLAS_VERSION
  return openblas_get_corename();
#else
  return "fallback";
#endif
}

void gemm(Precision precision, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
          const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (precision == Precision::Bf16 && bf16_gemm_available())
    return gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

float round_to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    u |= 0x00400000u;  // a NaN stays a (quiet) NaN
  } else {
    u += 0x7fffu + ((u >> 16) & 1u);
  }
  u &= 0xffff0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

}  // namespace alexnet
