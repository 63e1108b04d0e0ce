/* TEMPORARY naive gemm until the packed kernels land. */
#include "tapegrad.h"
#define NAIVE(NAME, T) \
__attribute__((weak)) void NAME(int64_t M, int64_t N, int64_t K, const T *A, int64_t lda, int ta, const T *B, int64_t ldb, int tb, T *C, int64_t ldc, int acc, int nt) { \
    (void)nt; \
    for (int64_t i = 0; i < M; i++) for (int64_t j = 0; j < N; j++) { \
        T s = 0; \
        for (int64_t k = 0; k < K; k++) s += (ta ? A[k*lda+i] : A[i*lda+k]) * (tb ? B[j*ldb+k] : B[k*ldb+j]); \
        C[i*ldc+j] = acc ? C[i*ldc+j] + s : s; } }
NAIVE(tg_gemm_f32, float)
NAIVE(tg_gemm_f64, double)
__attribute__((weak)) const char *tg_simd_level(void) { return "generic"; }
