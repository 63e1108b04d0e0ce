/* kernels/vmath_generic_fma.c — the generic level's elementwise math (vmath_impl.h) built
 * for FMA, x86-64 only: the float32 functions' VM_FMA32 compile to the fused instruction,
 * so the generic level gives the bits of the AVX2 and AVX-512 levels (and of the generic
 * build on other architectures, where fmaf is the hardware's). vmath.c calls in here only
 * after __builtin_cpu_supports("fma"); without FMA the generic level runs vmath.c's
 * baseline build, which multiplies and adds separately.
 *
 * Target "fma" lets the compiler vectorize the loops with AVX as well; contraction of any
 * other a*b+c stays off (GCC: the pragma below, as -ffp-contract=off; clang: the STDC
 * pragma), so the arithmetic per element is what vmath_impl.h states. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("fma"))), apply_to = function)
#pragma STDC FP_CONTRACT OFF
#else
#pragma GCC target("fma")
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#endif

#include "vmath.h"

#define VM_NAME(name) name##_generic_fma
#define VM_HAVE_FMA 1
#include "vmath_impl.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else
typedef int tg_vmath_generic_fma_unused; /* ISO C forbids an empty translation unit */
#endif
