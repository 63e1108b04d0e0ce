/* kernels/gemm_generic_fma.c — the generic level's gemm kernels (gemm_generic.h) built for
 * FMA, x86-64 only: fmaf / fma compile to the fused instruction, so the generic level
 * gives the bits of the AVX2 and AVX-512 kernels (and of the generic build on other
 * architectures, where fma is the hardware's). gemm.c calls in here only after
 * __builtin_cpu_supports("fma"); without FMA the generic level runs gemm.c's baseline
 * copies, which multiply and add separately.
 *
 * Target "fma" lets the compiler vectorize the loops with AVX as well; the arithmetic per
 * element is what gemm_generic.h states, whatever the vector width. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("fma"))), apply_to = function)
#pragma STDC FP_CONTRACT OFF
#else
#pragma GCC target("fma")
#endif

#include <math.h>
#include <stdint.h>

#include "gemm_internal.h"

#define GG_T float
#define GG_NAME(name) tg_gemm_##name##_generic_fma_f32
#define GG_FMA(a, b, c) fmaf((a), (b), (c))
#define GG_LINK
#include "gemm_generic.h"

#define GG_T double
#define GG_NAME(name) tg_gemm_##name##_generic_fma_f64
#define GG_FMA(a, b, c) fma((a), (b), (c))
#define GG_LINK
#include "gemm_generic.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else
typedef int tg_gemm_generic_fma_unused; /* ISO C forbids an empty translation unit */
#endif
