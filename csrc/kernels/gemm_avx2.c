/* kernels/gemm_avx2.c — AVX2+FMA gemm micro-kernels (contract in gemm_internal.h).
 *
 * The instruction set is enabled for this file only (the package is built with one set of
 * flags); gemm.c calls in here only after __builtin_cpu_supports("avx2") and ("fma"). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#endif

#include <immintrin.h>

#include "gemm_internal.h"

/* One row i of the f32 6 x 16 tile: two 8-wide accumulators. */
#define ROW_FMA_F32(i)                                   \
    do {                                                 \
        __m256 a_i = _mm256_broadcast_ss(a_panel + (i)); \
        c##i##0 = _mm256_fmadd_ps(a_i, b0, c##i##0);     \
        c##i##1 = _mm256_fmadd_ps(a_i, b1, c##i##1);     \
    } while (0)

#define ROW_STORE_F32(i)                                                  \
    do {                                                                  \
        float *c_row = C + (i) * ldc;                                     \
        if (load_c) {                                                     \
            c##i##0 = _mm256_add_ps(_mm256_loadu_ps(c_row), c##i##0);     \
            c##i##1 = _mm256_add_ps(_mm256_loadu_ps(c_row + 8), c##i##1); \
        }                                                                 \
        _mm256_storeu_ps(c_row, c##i##0);                                 \
        _mm256_storeu_ps(c_row + 8, c##i##1);                             \
    } while (0)

/* C[6 x 16] (row stride ldc) = (load_c ? C : 0) + a_panel[kc x 6]^T . b_panel[kc x 16] */
void tg_gemm_ukernel_avx2_f32(int64_t kc, const float *a_panel, const float *b_panel, float *C,
                              int64_t ldc, int load_c) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b_panel);
        __m256 b1 = _mm256_loadu_ps(b_panel + 8);
        ROW_FMA_F32(0);
        ROW_FMA_F32(1);
        ROW_FMA_F32(2);
        ROW_FMA_F32(3);
        ROW_FMA_F32(4);
        ROW_FMA_F32(5);
        a_panel += 6;
        b_panel += 16;
    }
    ROW_STORE_F32(0);
    ROW_STORE_F32(1);
    ROW_STORE_F32(2);
    ROW_STORE_F32(3);
    ROW_STORE_F32(4);
    ROW_STORE_F32(5);
}

/* One row i of the f64 6 x 8 tile: two 4-wide accumulators. */
#define ROW_FMA_F64(i)                                    \
    do {                                                  \
        __m256d a_i = _mm256_broadcast_sd(a_panel + (i)); \
        c##i##0 = _mm256_fmadd_pd(a_i, b0, c##i##0);      \
        c##i##1 = _mm256_fmadd_pd(a_i, b1, c##i##1);      \
    } while (0)

#define ROW_STORE_F64(i)                                                  \
    do {                                                                  \
        double *c_row = C + (i) * ldc;                                    \
        if (load_c) {                                                     \
            c##i##0 = _mm256_add_pd(_mm256_loadu_pd(c_row), c##i##0);     \
            c##i##1 = _mm256_add_pd(_mm256_loadu_pd(c_row + 4), c##i##1); \
        }                                                                 \
        _mm256_storeu_pd(c_row, c##i##0);                                 \
        _mm256_storeu_pd(c_row + 4, c##i##1);                             \
    } while (0)

/* C[6 x 8] (row stride ldc) = (load_c ? C : 0) + a_panel[kc x 6]^T . b_panel[kc x 8] */
void tg_gemm_ukernel_avx2_f64(int64_t kc, const double *a_panel, const double *b_panel,
                              double *C, int64_t ldc, int load_c) {
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
    for (int64_t k = 0; k < kc; k++) {
        __m256d b0 = _mm256_loadu_pd(b_panel);
        __m256d b1 = _mm256_loadu_pd(b_panel + 4);
        ROW_FMA_F64(0);
        ROW_FMA_F64(1);
        ROW_FMA_F64(2);
        ROW_FMA_F64(3);
        ROW_FMA_F64(4);
        ROW_FMA_F64(5);
        a_panel += 6;
        b_panel += 8;
    }
    ROW_STORE_F64(0);
    ROW_STORE_F64(1);
    ROW_STORE_F64(2);
    ROW_STORE_F64(3);
    ROW_STORE_F64(4);
    ROW_STORE_F64(5);
}

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else
/* Not x86-64 with GCC/Clang: nothing here; gemm.c uses its generic kernels. */
typedef int tg_gemm_avx2_unused;
#endif
