/* kernels/gemm_dot_tree.h — the fixed reduction tree of gemm_smallm.h's dot path on
 * 256-bit vectors, written once for the AVX2 and AVX-512 small-M kernels (their dot
 * paths end in the same adds, in the same order, so that they give the same bits).
 *
 * Included by gemm_avx2.c and gemm_avx512.c after their target pragmas (the functions
 * take each file's instruction set); not a header for anyone else. */
#ifndef TG_GEMM_DOT_TREE_H
#define TG_GEMM_DOT_TREE_H

#include <immintrin.h>

/* The tree for four C elements at once (a row of a dot tile), from each element's vector
 * after the first step (8 float lanes: p_l + p_(l+8); 4 double lanes: p_l + p_(l+4)): then
 * l + l+4 (float only), l + l+2, l + l+1, each add with the lower lane as its first
 * operand, several elements sharing a vector. */
static inline void sm_tree8x4_f32(const __m256 *s8, float out[4]) {
    __m256 t01 = _mm256_add_ps(_mm256_permute2f128_ps(s8[0], s8[1], 0x20),
                               _mm256_permute2f128_ps(s8[0], s8[1], 0x31));
    __m256 t23 = _mm256_add_ps(_mm256_permute2f128_ps(s8[2], s8[3], 0x20),
                               _mm256_permute2f128_ps(s8[2], s8[3], 0x31));
    /* lanes (of each 128-bit half) 0, 1: element 0 or 1; 2, 3: element 2 or 3 */
    __m256 u = _mm256_add_ps(_mm256_shuffle_ps(t01, t23, 0x44), _mm256_shuffle_ps(t01, t23, 0xEE));
    __m256 v = _mm256_add_ps(_mm256_shuffle_ps(u, u, 0x88), _mm256_shuffle_ps(u, u, 0xDD));
    /* v = [e0 e2 e0 e2 | e1 e3 e1 e3] */
    _mm_storeu_ps(out, _mm_unpacklo_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

static inline void sm_tree4x4_f64(const __m256d *s4, double out[4]) {
    __m256d t01 = _mm256_add_pd(_mm256_permute2f128_pd(s4[0], s4[1], 0x20),
                                _mm256_permute2f128_pd(s4[0], s4[1], 0x31));
    __m256d t23 = _mm256_add_pd(_mm256_permute2f128_pd(s4[2], s4[3], 0x20),
                                _mm256_permute2f128_pd(s4[2], s4[3], 0x31));
    __m256d v = _mm256_add_pd(_mm256_unpacklo_pd(t01, t23), _mm256_unpackhi_pd(t01, t23));
    /* v = [e0 e2 | e1 e3] */
    _mm256_storeu_pd(out, _mm256_permute4x64_pd(v, 0xD8));
}

#endif /* TG_GEMM_DOT_TREE_H */
