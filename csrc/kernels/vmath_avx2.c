/* kernels/vmath_avx2.c — the elementwise math of vmath_impl.h, vectorized for AVX2.
 *
 * Target "avx2" without "fma": no a*b+c can be fused, so the bits are those of the generic
 * build. vmath.c calls in here only after __builtin_cpu_supports("avx2"). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#pragma STDC FP_CONTRACT OFF
#else
#pragma GCC target("avx2")
#pragma GCC optimize("no-trapping-math")
#endif

#include "vmath.h"

#define VM_NAME(name) name##_avx2
#include "vmath_impl.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else
typedef int tg_vmath_avx2_unused; /* ISO C forbids an empty translation unit */
#endif
