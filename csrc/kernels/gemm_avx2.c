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

/* The tile's 6 rows of C (the first and the last element of each row: a row of 64 bytes
 * may straddle two lines) are asked into L1 before the k loop, so the loads and stores
 * after it do not wait on L2 or L3 (C is touched once per K block, long evicted). */
#define PREFETCH_C_TILE(C, ldc, nr)                                                \
    do {                                                                           \
        for (int i_ = 0; i_ < 6; i_++) {                                           \
            _mm_prefetch((const char *)((C) + i_ * (ldc)), _MM_HINT_T0);           \
            _mm_prefetch((const char *)((C) + i_ * (ldc) + (nr) - 1), _MM_HINT_T0); \
        }                                                                          \
    } while (0)

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
    PREFETCH_C_TILE(C, ldc, 16);
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
    PREFETCH_C_TILE(C, ldc, 8);
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

/* ------------------------------------------------------------ the small-M path */

#include "gemm_dot_tree.h" /* sm_tree8x4_f32, sm_tree4x4_f64 */

/* Four elements' two vectors each (q[4 * 2]) into out[4]. */
static inline void sm_reduce4_f32(const __m256 *q, float out[4]) {
    __m256 s8[4] = {_mm256_add_ps(q[0], q[1]), _mm256_add_ps(q[2], q[3]),
                    _mm256_add_ps(q[4], q[5]), _mm256_add_ps(q[6], q[7])};
    sm_tree8x4_f32(s8, out);
}

static inline void sm_reduce4_f64(const __m256d *q, double out[4]) {
    __m256d s4[4] = {_mm256_add_pd(q[0], q[1]), _mm256_add_pd(q[2], q[3]),
                     _mm256_add_pd(q[4], q[5]), _mm256_add_pd(q[6], q[7])};
    sm_tree4x4_f64(s4, out);
}

#define SM_T float
#define SM_NAME tg_gemm_smallm_avx2_f32
#define SM_V __m256
#define SM_W 8
#define SM_LOAD(p) _mm256_loadu_ps(p)
#define SM_STORE(p, v) _mm256_storeu_ps((p), (v))
#define SM_ADD(a, b) _mm256_add_ps((a), (b))
#define SM_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define SM_SET1(x) _mm256_set1_ps(x)
#define SM_ZERO() _mm256_setzero_ps()
#define SM_M __m256i
#define SM_MASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define SM_MLOAD(p, m) _mm256_maskload_ps((p), (m))
#define SM_MSTORE(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define SM_PIN(v) __asm__("" : "+x"(v))
#define SM_DU 2
#define SM_REDUCE4(q, out) sm_reduce4_f32((q), (out))
#define SM_MR_B 6
#define SM_NV_B 2
#define SM_MR_D 3
#define SM_NR_D 4
#define SM_DOT_ONE_PASS 12
#define SM_DOT_ROWS_BYTES 262144
#define SM_DOT_K_CHUNK_BYTES 1024
#define SM_DOT_L1_BYTES 32768
#include "gemm_smallm.h" /* undefines the parameters above but the tiles */

#define SM_T double
#define SM_NAME tg_gemm_smallm_avx2_f64
#define SM_V __m256d
#define SM_W 4
#define SM_LOAD(p) _mm256_loadu_pd(p)
#define SM_STORE(p, v) _mm256_storeu_pd((p), (v))
#define SM_ADD(a, b) _mm256_add_pd((a), (b))
#define SM_FMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define SM_SET1(x) _mm256_set1_pd(x)
#define SM_ZERO() _mm256_setzero_pd()
#define SM_M __m256i
#define SM_MASK(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define SM_MLOAD(p, m) _mm256_maskload_pd((p), (m))
#define SM_MSTORE(p, m, v) _mm256_maskstore_pd((p), (m), (v))
#define SM_PIN(v) __asm__("" : "+x"(v))
#define SM_DU 2
#define SM_REDUCE4(q, out) sm_reduce4_f64((q), (out))
#include "gemm_smallm.h" /* undefines the parameters above but the tiles */
#undef SM_MR_B
#undef SM_NV_B
#undef SM_MR_D
#undef SM_NR_D
#undef SM_DOT_ONE_PASS
#undef SM_DOT_ROWS_BYTES
#undef SM_DOT_K_CHUNK_BYTES
#undef SM_DOT_L1_BYTES

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else
/* Not x86-64 with GCC/Clang: nothing here; gemm.c uses its generic kernels. */
typedef int tg_gemm_avx2_unused;
#endif
