/* kernels/vmath.h — vectorized, branch-free elementwise math: exp, log, tanh, sigmoid and
 * relu over float32 and float64 arrays, forward and backward.
 *
 * One algorithm (vmath_impl.h), compiled four times: generic C (vmath.c, the x86
 * baseline), generic C for FMA (vmath_generic_fma.c, what the generic level runs on an x86
 * CPU with FMA), AVX2 (vmath_avx2.c) and AVX-512F (vmath_avx512.c), each translation unit
 * with its own `#pragma GCC target`, where the compiler vectorizes the loops (8 / 16
 * float32 lanes). Every element goes through the same IEEE operations at every level, in
 * the vector body as in the scalar tail; the float32 functions' explicit fused
 * multiply-adds are one rounding at every level of a CPU with FMA, the float64 functions
 * multiply and add: every level and every thread count give the same bits
 * (tests/test_vmath.py checks it at each level this CPU has). On x86 CPUs without FMA the
 * generic level is the baseline build, which multiplies and adds in the float32 functions
 * too (a software fmaf costs 25-120 ns): other float32 bits there, within the bounds
 * below (tests/test_vmath.py checks that build on every CPU). The level is chosen per call
 * like the gemm's: the best this CPU has, lowered by TAPEGRAD_SIMD.
 *
 * Accuracy against the exact value (a float64 or long double reference), measured over all 2^32
 * float32 inputs (the `--exhaustive` command in tests/test_vmath.py's docstring) and a wide
 * float64 sample, in ulps of the result (normal results; below the normal range the error
 * is also at most a few units of the smallest subnormal):
 *              exp     log     tanh    sigmoid   relu
 *   float32   0.965   0.843   1.056   0.965     exact   (all 2^32 inputs, vs float64)
 *   baseline  1.049   0.843   1.065   1.504     exact   (float32 without FMA, the same)
 *   float64   0.933   0.769   1.317   1.995     exact   (4e6 inputs, vs long double)
 * tests/test_vmath.py asserts 1.1 / 0.9 / 1.1 / 1.6 ulp (float32, both builds, over a
 * ~10^7-point strided sweep of the bit patterns) and 1.0 / 0.8 / 1.5 / 2.5 ulp (float64, over 2e5
 * inputs against numpy's long double). All within 2 ulps, i.e. 4 u |f(x)| with u the unit
 * roundoff: what tests/bounds.py allows one elementwise op. Everything is computed in the
 * array's own type.
 * Special values: exp(+inf) = inf, exp(-inf) = 0, overflow -> inf, underflow -> 0 through
 * correctly scaled subnormals; log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, subnormal
 * inputs scaled into the normal range first; tanh(+-inf) = +-1, tanh(-0) = -0; sigmoid(+inf) = 1,
 * sigmoid(-inf) = 0, never NaN from a finite x; NaN in gives NaN out; relu(NaN) = NaN,
 * relu(-0) = -0 (as PyTorch), relu's gradient passes g where x is NaN (as PyTorch).
 *
 * float32 powers (pow_f32, pow2_f32, rpow_f32: x ** s, a ** b, base ** x; used by
 * ops/pow.c): e^(b log a) in float64 with table-driven log and exp (vmath_impl.h, with
 * 128-entry tables; at the AVX-512 level vmath_avx512.c's intrinsics, with 16-entry tables
 * a permute reads; x ** s for s a multiple of 1/2 up to 8 in magnitude as products and a
 * square root), rounded once to float32 only where the double is more than 2^18 of its
 * last-bit units away from a float32 rounding boundary, while its error bound is 2^10 such
 * units (2^12.4 with the 16-entry tables); every other lane
 * (a <= 0, inf, NaN, results below the float32 normal range, ~1 in 1000 lanes near a
 * boundary) is left NaN for the caller, which computes (float)pow((double)a, (double)b)
 * with libm. So the result is, bit for bit, libm's pow rounded to float32: within 0.5 ulp
 * of the exact power plus libm's own error (under 1 double ulp, i.e. 2^-29 float32 ulp),
 * the same at every level and thread count (tests/test_pow.py checks it against libm and
 * a long double reference). float64 tensors use libm's pow itself. */
#ifndef TG_VMATH_H
#define TG_VMATH_H

#include <stdint.h>

#include "tapegrad.h" /* TG_VMATH_* function ids */

typedef void (*tg_vm_f32_fn)(const float *restrict x, float *restrict y, int64_t n);
typedef void (*tg_vm_f64_fn)(const double *restrict x, double *restrict y, int64_t n);
/* gx[i] += g[i] * f'(.), from a = the output y (exp, tanh, sigmoid) or the input x (log,
 * relu); with assign, gx[i] = g[i] * f'(.) (a fresh gradient slot, never read) */
typedef void (*tg_vm_grad_f32_fn)(const float *restrict a, const float *restrict g,
                                  float *restrict gx, int64_t n, int assign);
typedef void (*tg_vm_grad_f64_fn)(const double *restrict a, const double *restrict g,
                                  double *restrict gx, int64_t n, int assign);

/* float32 powers computed in double (vmath_impl.h): y[i] = the power, rounded once to
 * float32, or NaN in the lanes the caller must compute with libm as
 * (float)pow((double)a, (double)b); they return how many NaN lanes they left. */
typedef int64_t (*tg_vm_pow_f32_fn)(const float *restrict x, double s, float *restrict y,
                                    int64_t n); /* x[i] ** s */
typedef int64_t (*tg_vm_pow2_f32_fn)(const float *restrict a, const float *restrict b,
                                     float *restrict y, int64_t n); /* a[i] ** b[i] */
typedef int64_t (*tg_vm_rpow_f32_fn)(double base, const float *restrict x, float *restrict y,
                                     int64_t n); /* base ** x[i] */

/* One level's kernels, indexed by TG_VMATH_*, and the float32 powers. */
typedef struct {
    tg_vm_f32_fn f32[TG_VMATH_COUNT];
    tg_vm_f64_fn f64[TG_VMATH_COUNT];
    tg_vm_grad_f32_fn grad_f32[TG_VMATH_COUNT];
    tg_vm_grad_f64_fn grad_f64[TG_VMATH_COUNT];
    tg_vm_pow_f32_fn pow_f32;
    tg_vm_pow_f32_fn pow_halves_f32; /* the same for s = q / 2, q an integer, 1 <= |q| <= 16 */
    tg_vm_pow2_f32_fn pow2_f32;
    tg_vm_rpow_f32_fn rpow_f32;
} tg_vmath_table;

/* The kernels of the SIMD level in use now (tg_gemm_simd_level_now: the CPU's best,
 * lowered by TAPEGRAD_SIMD). Never NULL. */
const tg_vmath_table *tg_vmath_kernels(void);
/* Whether fn (TG_VMATH_*) reads the output y (1) or the input x (0) in its gradient. */
int tg_vmath_grad_uses_output(int fn);

#endif /* TG_VMATH_H */
