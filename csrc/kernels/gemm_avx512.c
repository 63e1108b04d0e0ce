/* kernels/gemm_avx512.c — AVX-512F gemm micro-kernels (contract in gemm_internal.h).
 *
 * The instruction set is enabled for this file only (the package is built with one set of
 * flags); gemm.c calls in here only after __builtin_cpu_supports("avx512f"). 24 of the 32
 * zmm registers hold the 12-row tile; a(i,k) is broadcast straight from the panel. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC target("avx512f")
#endif

#include <immintrin.h>

#include "gemm_internal.h"

/* One row i of the f32 tile: two 16-wide accumulators, a(i,k) broadcast. */
#define ROW_FMA_F32(i)                                 \
    do {                                               \
        __m512 a_i = _mm512_set1_ps(a_panel[i]);       \
        c##i##_0 = _mm512_fmadd_ps(a_i, b0, c##i##_0); \
        c##i##_1 = _mm512_fmadd_ps(a_i, b1, c##i##_1); \
    } while (0)

#define ROW_STORE_F32(i)                                                     \
    do {                                                                     \
        float *c_row = C + (i) * ldc;                                        \
        if (load_c) {                                                        \
            c##i##_0 = _mm512_add_ps(_mm512_loadu_ps(c_row), c##i##_0);      \
            c##i##_1 = _mm512_add_ps(_mm512_loadu_ps(c_row + 16), c##i##_1); \
        }                                                                    \
        _mm512_storeu_ps(c_row, c##i##_0);                                   \
        _mm512_storeu_ps(c_row + 16, c##i##_1);                              \
    } while (0)

/* C[12 x 32] (row stride ldc) = (load_c ? C : 0) + a_panel[kc x 12]^T . b_panel[kc x 32] */
void tg_gemm_ukernel_avx512_f32(int64_t kc, const float *a_panel, const float *b_panel,
                                float *C, int64_t ldc, int load_c) {
    __m512 c0_0 = _mm512_setzero_ps(), c0_1 = _mm512_setzero_ps();
    __m512 c1_0 = _mm512_setzero_ps(), c1_1 = _mm512_setzero_ps();
    __m512 c2_0 = _mm512_setzero_ps(), c2_1 = _mm512_setzero_ps();
    __m512 c3_0 = _mm512_setzero_ps(), c3_1 = _mm512_setzero_ps();
    __m512 c4_0 = _mm512_setzero_ps(), c4_1 = _mm512_setzero_ps();
    __m512 c5_0 = _mm512_setzero_ps(), c5_1 = _mm512_setzero_ps();
    __m512 c6_0 = _mm512_setzero_ps(), c6_1 = _mm512_setzero_ps();
    __m512 c7_0 = _mm512_setzero_ps(), c7_1 = _mm512_setzero_ps();
    __m512 c8_0 = _mm512_setzero_ps(), c8_1 = _mm512_setzero_ps();
    __m512 c9_0 = _mm512_setzero_ps(), c9_1 = _mm512_setzero_ps();
    __m512 c10_0 = _mm512_setzero_ps(), c10_1 = _mm512_setzero_ps();
    __m512 c11_0 = _mm512_setzero_ps(), c11_1 = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(b_panel);
        __m512 b1 = _mm512_loadu_ps(b_panel + 16);
        ROW_FMA_F32(0);
        ROW_FMA_F32(1);
        ROW_FMA_F32(2);
        ROW_FMA_F32(3);
        ROW_FMA_F32(4);
        ROW_FMA_F32(5);
        ROW_FMA_F32(6);
        ROW_FMA_F32(7);
        ROW_FMA_F32(8);
        ROW_FMA_F32(9);
        ROW_FMA_F32(10);
        ROW_FMA_F32(11);
        a_panel += 12;
        b_panel += 32;
    }
    ROW_STORE_F32(0);
    ROW_STORE_F32(1);
    ROW_STORE_F32(2);
    ROW_STORE_F32(3);
    ROW_STORE_F32(4);
    ROW_STORE_F32(5);
    ROW_STORE_F32(6);
    ROW_STORE_F32(7);
    ROW_STORE_F32(8);
    ROW_STORE_F32(9);
    ROW_STORE_F32(10);
    ROW_STORE_F32(11);
}

/* One row i of the f64 tile: two 8-wide accumulators, a(i,k) broadcast. */
#define ROW_FMA_F64(i)                                 \
    do {                                               \
        __m512d a_i = _mm512_set1_pd(a_panel[i]);      \
        c##i##_0 = _mm512_fmadd_pd(a_i, b0, c##i##_0); \
        c##i##_1 = _mm512_fmadd_pd(a_i, b1, c##i##_1); \
    } while (0)

#define ROW_STORE_F64(i)                                                    \
    do {                                                                    \
        double *c_row = C + (i) * ldc;                                      \
        if (load_c) {                                                       \
            c##i##_0 = _mm512_add_pd(_mm512_loadu_pd(c_row), c##i##_0);     \
            c##i##_1 = _mm512_add_pd(_mm512_loadu_pd(c_row + 8), c##i##_1); \
        }                                                                   \
        _mm512_storeu_pd(c_row, c##i##_0);                                  \
        _mm512_storeu_pd(c_row + 8, c##i##_1);                              \
    } while (0)

/* C[12 x 16] (row stride ldc) = (load_c ? C : 0) + a_panel[kc x 12]^T . b_panel[kc x 16] */
void tg_gemm_ukernel_avx512_f64(int64_t kc, const double *a_panel, const double *b_panel,
                                double *C, int64_t ldc, int load_c) {
    __m512d c0_0 = _mm512_setzero_pd(), c0_1 = _mm512_setzero_pd();
    __m512d c1_0 = _mm512_setzero_pd(), c1_1 = _mm512_setzero_pd();
    __m512d c2_0 = _mm512_setzero_pd(), c2_1 = _mm512_setzero_pd();
    __m512d c3_0 = _mm512_setzero_pd(), c3_1 = _mm512_setzero_pd();
    __m512d c4_0 = _mm512_setzero_pd(), c4_1 = _mm512_setzero_pd();
    __m512d c5_0 = _mm512_setzero_pd(), c5_1 = _mm512_setzero_pd();
    __m512d c6_0 = _mm512_setzero_pd(), c6_1 = _mm512_setzero_pd();
    __m512d c7_0 = _mm512_setzero_pd(), c7_1 = _mm512_setzero_pd();
    __m512d c8_0 = _mm512_setzero_pd(), c8_1 = _mm512_setzero_pd();
    __m512d c9_0 = _mm512_setzero_pd(), c9_1 = _mm512_setzero_pd();
    __m512d c10_0 = _mm512_setzero_pd(), c10_1 = _mm512_setzero_pd();
    __m512d c11_0 = _mm512_setzero_pd(), c11_1 = _mm512_setzero_pd();
    for (int64_t k = 0; k < kc; k++) {
        __m512d b0 = _mm512_loadu_pd(b_panel);
        __m512d b1 = _mm512_loadu_pd(b_panel + 8);
        ROW_FMA_F64(0);
        ROW_FMA_F64(1);
        ROW_FMA_F64(2);
        ROW_FMA_F64(3);
        ROW_FMA_F64(4);
        ROW_FMA_F64(5);
        ROW_FMA_F64(6);
        ROW_FMA_F64(7);
        ROW_FMA_F64(8);
        ROW_FMA_F64(9);
        ROW_FMA_F64(10);
        ROW_FMA_F64(11);
        a_panel += 12;
        b_panel += 16;
    }
    ROW_STORE_F64(0);
    ROW_STORE_F64(1);
    ROW_STORE_F64(2);
    ROW_STORE_F64(3);
    ROW_STORE_F64(4);
    ROW_STORE_F64(5);
    ROW_STORE_F64(6);
    ROW_STORE_F64(7);
    ROW_STORE_F64(8);
    ROW_STORE_F64(9);
    ROW_STORE_F64(10);
    ROW_STORE_F64(11);
}

/* ------------------------------------------------------------ the small-M path */

#include "gemm_dot_tree.h" /* sm_tree8x4_f32, sm_tree4x4_f64 */

/* Four elements' vector each (q[4], SM_DU = 1) into out[4]: l + l+8 (float) or l + l+4
 * (double) first, then the tree of gemm_dot_tree.h. */
static inline void sm_reduce4_f32(const __m512 *q, float out[4]) {
    __m256 s8[4];
    for (int j = 0; j < 4; j++)
        s8[j] = _mm256_add_ps(_mm512_castps512_ps256(q[j]),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(q[j]), 1)));
    sm_tree8x4_f32(s8, out);
}

static inline void sm_reduce4_f64(const __m512d *q, double out[4]) {
    __m256d s4[4];
    for (int j = 0; j < 4; j++)
        s4[j] = _mm256_add_pd(_mm512_castpd512_pd256(q[j]), _mm512_extractf64x4_pd(q[j], 1));
    sm_tree4x4_f64(s4, out);
}

#define SM_T float
#define SM_NAME tg_gemm_smallm_avx512_f32
#define SM_V __m512
#define SM_W 16
#define SM_LOAD(p) _mm512_loadu_ps(p)
#define SM_STORE(p, v) _mm512_storeu_ps((p), (v))
#define SM_ADD(a, b) _mm512_add_ps((a), (b))
#define SM_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define SM_SET1(x) _mm512_set1_ps(x)
#define SM_ZERO() _mm512_setzero_ps()
#define SM_M __mmask16
#define SM_MASK(n) ((__mmask16)((1u << (n)) - 1u))
#define SM_MLOAD(p, m) _mm512_maskz_loadu_ps((m), (p))
#define SM_MSTORE(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define SM_PIN(v) __asm__("" : "+v"(v))
#define SM_DU 1
#define SM_REDUCE4(q, out) sm_reduce4_f32((q), (out))
#define SM_MR_B 8
#define SM_NV_B 3
#define SM_MR_D 4
#define SM_NR_D 4
#define SM_DOT_ONE_PASS 16
#define SM_DOT_ROWS_BYTES 262144
#define SM_DOT_K_CHUNK_BYTES 1024 /* one pass: unused */
#define SM_DOT_L1_BYTES 32768
#include "gemm_smallm.h" /* undefines the parameters above but the tiles */

#define SM_T double
#define SM_NAME tg_gemm_smallm_avx512_f64
#define SM_V __m512d
#define SM_W 8
#define SM_LOAD(p) _mm512_loadu_pd(p)
#define SM_STORE(p, v) _mm512_storeu_pd((p), (v))
#define SM_ADD(a, b) _mm512_add_pd((a), (b))
#define SM_FMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define SM_SET1(x) _mm512_set1_pd(x)
#define SM_ZERO() _mm512_setzero_pd()
#define SM_M __mmask8
#define SM_MASK(n) ((__mmask8)((1u << (n)) - 1u))
#define SM_MLOAD(p, m) _mm512_maskz_loadu_pd((m), (p))
#define SM_MSTORE(p, m, v) _mm512_mask_storeu_pd((p), (m), (v))
#define SM_PIN(v) __asm__("" : "+v"(v))
#define SM_DU 1
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
typedef int tg_gemm_avx512_unused;
#endif
