/* kernels/gemm_internal.h — what the gemm translation units share.
 *
 * The driver (gemm.c + gemm_driver.h) packs op(A) and op(B) into zero-padded panels and
 * hands MR x NR tiles to a micro-kernel chosen at run time: generic C (gemm.c), AVX2+FMA
 * (gemm_avx2.c) or AVX-512F (gemm_avx512.c). All micro-kernels share one contract:
 *
 *   a_panel: kc x MR, stored k-major  (a_panel[k*MR + i] = op(A)(i, k))
 *   b_panel: kc x NR, stored k-major  (b_panel[k*NR + j] = op(B)(k, j))
 *   C[i*ldc + j] = (load_c ? C[i*ldc + j] + acc(i,j) : acc(i,j)),
 *   acc(i,j) = sum over k = 0..kc-1, in increasing k, of a(i,k)*b(k,j), starting from 0.
 *
 * Every C element goes through the same arithmetic whatever its position in the tile, so
 * how the output is split between threads cannot change a bit of the result. */
#ifndef TG_GEMM_INTERNAL_H
#define TG_GEMM_INTERNAL_H

#include <stdint.h>

#include "tapegrad.h"

typedef void (*tg_gemm_ukernel_f32)(int64_t kc, const float *a_panel, const float *b_panel,
                                    float *C, int64_t ldc, int load_c);
typedef void (*tg_gemm_ukernel_f64)(int64_t kc, const double *a_panel, const double *b_panel,
                                    double *C, int64_t ldc, int load_c);

/* Largest tile of any micro-kernel (the driver's edge-tile buffer has this size). */
#define TG_GEMM_MAX_MR 16
#define TG_GEMM_MAX_NR 32

/* Reference kernels tg_gemm_naive_f32/f64 (the plain triple loop, same semantics as
 * tg_gemm_*): declared in tapegrad.h, used by the tests.
 * The workspace-taking entry points tg_gemm_workspace_f32/f64 (bytes of scratch a shape
 * needs, for every SIMD level and thread counts 1..nthreads) and tg_gemm_ws_f32/f64 (the
 * gemm with that scratch, allocating nothing for packing) are declared in tapegrad.h too:
 * ops and replayed programs plan the workspace once and pass it in. */

/* SIMD levels, lowest first. tg_gemm_simd_level_now() is what the CPU supports, lowered by
 * the environment variable TAPEGRAD_SIMD=generic|avx2|avx512 (never raised). */
enum { TG_SIMD_GENERIC = 0, TG_SIMD_AVX2 = 1, TG_SIMD_AVX512 = 2 };
int tg_gemm_simd_level_now(void);
/* 1 where this CPU fuses multiply-adds (x86: FMA3; other architectures: 1), so that the
 * generic level runs its FMA build (the other levels' bits) */
int tg_cpu_has_fma(void);
/* Pin this thread's level (what tg_gemm_simd_level_now returns) to `level`, or unpin
 * with -1 (a replayed run pins the level it read once). */
void tg_simd_pin(int level);

/* Like tg_gemm_*, but at a forced SIMD level (clamped to what the CPU supports); for tests
 * and benchmarks that compare the paths. */
void tg_gemm_at_level_f32(int level, int64_t M, int64_t N, int64_t K, const float *A,
                          int64_t lda, int trans_a, const float *B, int64_t ldb, int trans_b,
                          float *C, int64_t ldc, int accumulate, int nthreads);
void tg_gemm_at_level_f64(int level, int64_t M, int64_t N, int64_t K, const double *A,
                          int64_t lda, int trans_a, const double *B, int64_t ldb, int trans_b,
                          double *C, int64_t ldc, int accumulate, int nthreads);

/* AVX2+FMA micro-kernels (gemm_avx2.c): f32 6 x 16, f64 6 x 8. */
#define TG_GEMM_AVX2_MR_F32 6
#define TG_GEMM_AVX2_NR_F32 16
#define TG_GEMM_AVX2_MR_F64 6
#define TG_GEMM_AVX2_NR_F64 8
void tg_gemm_ukernel_avx2_f32(int64_t kc, const float *a_panel, const float *b_panel, float *C,
                              int64_t ldc, int load_c);
void tg_gemm_ukernel_avx2_f64(int64_t kc, const double *a_panel, const double *b_panel,
                              double *C, int64_t ldc, int load_c);

/* AVX-512F micro-kernels (gemm_avx512.c): f32 12 x 32, f64 12 x 16. */
#define TG_GEMM_AVX512_MR_F32 12
#define TG_GEMM_AVX512_NR_F32 32
#define TG_GEMM_AVX512_MR_F64 12
#define TG_GEMM_AVX512_NR_F64 16
void tg_gemm_ukernel_avx512_f32(int64_t kc, const float *a_panel, const float *b_panel,
                                float *C, int64_t ldc, int load_c);
void tg_gemm_ukernel_avx512_f64(int64_t kc, const double *a_panel, const double *b_panel,
                                double *C, int64_t ldc, int load_c);

/* The unpacked small-M gemm (gemm_smallm.h, compiled per ISA in gemm_avx2.c and
 * gemm_avx512.c): C[M x N] (+)= op(A) . op(B) with op(A)(i,k) = A[i*a_rs + k*a_cs],
 * op(B)(k,j) = B[k*b_rs + j*b_cs]; M, N, K > 0; either b_cs == 1 (the broadcast path) or
 * b_rs == 1 and a_cs == 1 (the dot path). Same bits at both levels; the summation order is
 * documented in gemm_smallm.h. */
typedef void (*tg_gemm_smallm_fn_f32)(int64_t M, int64_t N, int64_t K, const float *A,
                                      int64_t a_rs, int64_t a_cs, const float *B, int64_t b_rs,
                                      int64_t b_cs, float *C, int64_t ldc, int accumulate);
typedef void (*tg_gemm_smallm_fn_f64)(int64_t M, int64_t N, int64_t K, const double *A,
                                      int64_t a_rs, int64_t a_cs, const double *B,
                                      int64_t b_rs, int64_t b_cs, double *C, int64_t ldc,
                                      int accumulate);
void tg_gemm_smallm_avx2_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t a_rs,
                             int64_t a_cs, const float *B, int64_t b_rs, int64_t b_cs, float *C,
                             int64_t ldc, int accumulate);
void tg_gemm_smallm_avx2_f64(int64_t M, int64_t N, int64_t K, const double *A, int64_t a_rs,
                             int64_t a_cs, const double *B, int64_t b_rs, int64_t b_cs,
                             double *C, int64_t ldc, int accumulate);
void tg_gemm_smallm_avx512_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t a_rs,
                               int64_t a_cs, const float *B, int64_t b_rs, int64_t b_cs,
                               float *C, int64_t ldc, int accumulate);
void tg_gemm_smallm_avx512_f64(int64_t M, int64_t N, int64_t K, const double *A, int64_t a_rs,
                               int64_t a_cs, const double *B, int64_t b_rs, int64_t b_cs,
                               double *C, int64_t ldc, int accumulate);

/* The generic level's kernels (gemm_generic.h): the packed path's micro-kernel
 * (TG_GEMM_GENERIC_MR x 32 bytes), its arithmetic unpacked (the fallback of a strip with
 * no packing memory; kb: the packed path's K block) and the small-M path, in the SIMD
 * kernels' summation orders. gemm.c has the baseline copies; on x86-64 gemm_generic_fma.c
 * has these, built for FMA (run only on CPUs that have it), which give the AVX2 / AVX-512
 * bits. */
#define TG_GEMM_GENERIC_MR 4
void tg_gemm_ukernel_generic_fma_f32(int64_t kc, const float *a_panel, const float *b_panel,
                                     float *C, int64_t ldc, int load_c);
void tg_gemm_ukernel_generic_fma_f64(int64_t kc, const double *a_panel,
                                     const double *b_panel, double *C, int64_t ldc,
                                     int load_c);
void tg_gemm_blocked_generic_fma_f32(int64_t kb, int64_t M, int64_t N, int64_t K,
                                     const float *A, int64_t a_rs, int64_t a_cs, const float *B,
                                     int64_t b_rs, int64_t b_cs, float *C, int64_t ldc,
                                     int accumulate);
void tg_gemm_blocked_generic_fma_f64(int64_t kb, int64_t M, int64_t N, int64_t K,
                                     const double *A, int64_t a_rs, int64_t a_cs,
                                     const double *B, int64_t b_rs, int64_t b_cs, double *C,
                                     int64_t ldc, int accumulate);
void tg_gemm_smallm_generic_fma_f32(int64_t M, int64_t N, int64_t K, const float *A,
                                    int64_t a_rs, int64_t a_cs, const float *B, int64_t b_rs,
                                    int64_t b_cs, float *C, int64_t ldc, int accumulate);
void tg_gemm_smallm_generic_fma_f64(int64_t M, int64_t N, int64_t K, const double *A,
                                    int64_t a_rs, int64_t a_cs, const double *B, int64_t b_rs,
                                    int64_t b_cs, double *C, int64_t ldc, int accumulate);

#endif /* TG_GEMM_INTERNAL_H */
