/* kernels/vmath_avx512.c — the elementwise math of vmath_impl.h, vectorized for AVX-512F.
 *
 * AVX-512F has FMA instructions: contraction of a*b+c into one is turned off (GCC:
 * -ffp-contract=off is already the default of -std=c11, and the pragma below keeps it so
 * under -std=gnu11; clang: the STDC pragma), so the bits are those of the generic build.
 * vmath.c calls in here only after __builtin_cpu_supports("avx512f"). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#pragma STDC FP_CONTRACT OFF
#else
#pragma GCC target("avx512f")
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#endif

#include "vmath.h"

#define VM_NAME(name) name##_avx512
#include "vmath_impl.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else
typedef int tg_vmath_avx512_unused; /* ISO C forbids an empty translation unit */
#endif
