/* kernels/vmath_avx2.c — the elementwise math of vmath_impl.h, vectorized for AVX2.
 *
 * Target "avx2,fma" with contraction of a*b+c turned off (GCC: -ffp-contract=off, kept by
 * the pragma below under -std=gnu11; clang: the STDC pragma), so the bits are those of the
 * generic level. The only fused multiply-adds are the explicit ones (VM_HAVE_FMA; see
 * vmath_impl.h): the float32 functions' VM_FMA32, fused at every level of an FMA CPU (the
 * generic one there is vmath_generic_fma.c), and the float32 powers' VM_MADD64, which do
 * not change those bits. vmath.c calls in here only after __builtin_cpu_supports("avx2")
 * and ("fma"). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#pragma STDC FP_CONTRACT OFF
#else
#pragma GCC target("avx2,fma")
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#endif

#include "vmath.h"

#define VM_NAME(name) name##_avx2
#define VM_HAVE_FMA 1
#include "vmath_impl.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else
typedef int tg_vmath_avx2_unused; /* ISO C forbids an empty translation unit */
#endif
