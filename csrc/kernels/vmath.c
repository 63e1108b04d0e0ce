/* kernels/vmath.c — the generic (portable C) build of the elementwise math of
 * vmath_impl.h, the per-call choice of SIMD level, and the test-facing tg_vmath_* API.
 * See vmath.h for the algorithms' accuracy and special values. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#endif

#include <stdint.h>
#include <string.h>

#include "../internal.h"
#include "gemm_internal.h"
#include "vmath.h"

#define VM_NAME(name) name##_generic
#include "vmath_impl.h"
#undef VM_NAME

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VM_HAVE_X86 1
extern const tg_vmath_table tg_vmath_table_avx2, tg_vmath_table_avx512,
    tg_vmath_table_generic_fma;
#else
#define VM_HAVE_X86 0
#endif

/* A level's kernels; TG_SIMD_GENERIC on an x86 CPU with FMA is the generic code built for
 * FMA (the bits of the other levels), on one without it the baseline build. */
static const tg_vmath_table *table_at(int level) {
#if VM_HAVE_X86
    if (level == TG_SIMD_AVX512) return &tg_vmath_table_avx512;
    if (level == TG_SIMD_AVX2) return &tg_vmath_table_avx2;
    if (tg_cpu_has_fma()) return &tg_vmath_table_generic_fma;
#endif
    (void)level;
    return &tg_vmath_table_generic;
}

/* What this CPU runs, before TAPEGRAD_SIMD: the vmath kernels need AVX2 or AVX-512F, with
 * FMA, as the gemm's levels do. */
static int cpu_level(void) {
#if VM_HAVE_X86
    __builtin_cpu_init();
    if (!tg_cpu_has_fma()) return TG_SIMD_GENERIC;
    if (__builtin_cpu_supports("avx512f")) return TG_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2")) return TG_SIMD_AVX2;
#endif
    return TG_SIMD_GENERIC;
}

const tg_vmath_table *tg_vmath_kernels(void) { return table_at(tg_gemm_simd_level_now()); }

int tg_vmath_grad_uses_output(int fn) {
    return fn == TG_VMATH_EXP || fn == TG_VMATH_TANH || fn == TG_VMATH_SIGMOID;
}

/* ------------------------------------------------------------------ test-facing API */

static tg_status check_call(const char *name, int fn, int64_t n, const void *p, const void *q,
                            const void *r, const char *isa, const tg_vmath_table **table) {
    if (fn < 0 || fn >= TG_VMATH_COUNT)
        return tg_fail(TG_ERR_ARG, "%s: unknown function %d (TG_VMATH_* is 0..%d)", name, fn,
                       TG_VMATH_COUNT - 1);
    if (n < 0) return tg_fail(TG_ERR_ARG, "%s: negative length %lld", name, (long long)n);
    if (n > 0 && (!p || !q || !r)) return tg_fail(TG_ERR_ARG, "%s: NULL array", name);
    int level;
    if (isa && strcmp(isa, "baseline") == 0) { /* the build x86 CPUs without FMA run */
        *table = &tg_vmath_table_generic;
        return TG_OK;
    }
    if (!isa) {
        level = tg_gemm_simd_level_now();
    } else if (strcmp(isa, "generic") == 0) {
        level = TG_SIMD_GENERIC;
    } else if (strcmp(isa, "avx2") == 0) {
        level = TG_SIMD_AVX2;
    } else if (strcmp(isa, "avx512") == 0) {
        level = TG_SIMD_AVX512;
    } else {
        return tg_fail(TG_ERR_ARG,
                       "%s: unknown instruction set '%s' (generic, avx2, avx512, baseline)",
                       name, isa);
    }
    if (level > cpu_level())
        return tg_fail(TG_ERR_ARG, "%s: this CPU (or build) cannot run '%s'", name, isa);
    *table = table_at(level);
    return TG_OK;
}

tg_status tg_vmath_f32(int fn, const float *x, float *y, int64_t n, const char *isa) {
    const tg_vmath_table *t = NULL;
    tg_status st = check_call("tg_vmath_f32", fn, n, x, y, y, isa, &t);
    if (st == TG_OK) t->f32[fn](x, y, n);
    return st;
}

tg_status tg_vmath_f64(int fn, const double *x, double *y, int64_t n, const char *isa) {
    const tg_vmath_table *t = NULL;
    tg_status st = check_call("tg_vmath_f64", fn, n, x, y, y, isa, &t);
    if (st == TG_OK) t->f64[fn](x, y, n);
    return st;
}

tg_status tg_vmath_grad_f32(int fn, const float *a, const float *g, float *gx, int64_t n,
                            const char *isa) {
    const tg_vmath_table *t = NULL;
    tg_status st = check_call("tg_vmath_grad_f32", fn, n, a, g, gx, isa, &t);
    if (st == TG_OK) t->grad_f32[fn](a, g, gx, n, 0);
    return st;
}

tg_status tg_vmath_grad_f64(int fn, const double *a, const double *g, double *gx, int64_t n,
                            const char *isa) {
    const tg_vmath_table *t = NULL;
    tg_status st = check_call("tg_vmath_grad_f64", fn, n, a, g, gx, isa, &t);
    if (st == TG_OK) t->grad_f64[fn](a, g, gx, n, 0);
    return st;
}
