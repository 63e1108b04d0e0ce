/* kernels/vmath_impl.h — the elementwise math algorithm, ONE source for every SIMD level.
 *
 * Included by vmath.c (generic C), vmath_generic_fma.c (the same, built for FMA),
 * vmath_avx2.c and vmath_avx512.c, each with its own VM_NAME(suffix) and its own
 * `#pragma GCC target`: the compiler vectorizes the array loops below for that
 * instruction set (8 / 16 float32 lanes). Each element goes through exactly the same IEEE
 * operations whatever the level and whatever its position (vector body or scalar tail),
 * so every level gives the same bits. What makes that hold:
 *   - straight-line code: special cases are computed for every element and selected with
 *     ternaries (the vectorizer turns them into masks and blends), never branched on;
 *   - only +, -, *, / (correctly rounded), bit operations, exact integer <-> float steps
 *     and, in the float32 functions, explicit fused multiply-adds (VM_FMA32, below); no
 *     libm call, and no other contraction of a*b+c (the including files turn it off);
 *     the float64 functions multiply and add separately everywhere;
 *   - rounding to an integer with the 1.5 * 2^p shifter (an add), so no rint() variant.
 * The float32 functions' FMAs are one rounding at every level of a CPU with FMA (and off
 * x86); the x86 baseline build, which only CPUs without FMA run, multiplies and adds
 * instead: there the bits differ, within the same error bounds (vmath.h).
 * The float32 powers' double-precision log and exp (pow_log_f64, pow_exp_f64) use
 * VM_MADD64(a, b, c), fused where the including file defines VM_HAVE_FMA, else a*b + c.
 * Those kernels only decide lanes whose float32 rounding is certain and their error bound
 * holds either way (one rounding where the bound counts two), so the powers stay libm's
 * pow rounded to float32 at every level, on every CPU.
 *
 * Algorithms (coefficients fitted for this file with mpmath's Chebyshev fits, then
 * rounded to the type):
 *   exp(x): n = round(x / ln2), r = x - n ln2 (ln2 in two parts, the high part short
 *     enough that n * hi is exact), exp(r) = 1 + r (1 + r q(r)) (two FMAs; without FMA
 *     1 + (r + r^2 q(r))), times 2^(n/2) * 2^(n - n/2)
 *     (two exact power-of-two steps, so results in the subnormal range are rounded once).
 *     x is clamped first to a range where the result is already inf / 0.
 *   log(x): x = 2^k m, m in [sqrt(1/2), sqrt(2)) (subnormals scaled by 2^23 / 2^52 first),
 *     f = m - 1, s = f / (2 + f), log(1+f) = f - (f^2/2 - s (f^2/2 + R(s^2))),
 *     plus k ln2 in two parts.
 *   tanh(x): |x| < T: |x| + |x|^3 P(x^2); else 1 - 2 / (exp(2|x|) + 1); the sign of x
 *     put back (so tanh(-0) = -0, tanh(+-large) = +-1 exactly).
 *   sigmoid(x): e = exp(-|x|) in (0, 1]: 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0
 *     (never exp of a large positive number: no overflow, no NaN from a finite x); for
 *     float32, e is kept as e_hi + e_lo (e_lo the rounding error of exp's last step: with
 *     FMA an FMA's, recovered by another FMA to 2^-48 relatively; without, an add's,
 *     exact by Fast2Sum), scaled by 2^64 so that one power-of-two step keeps it normal,
 *     and the quotient gets a first-order correction for e_lo, the rounding of 1 + e and (with
 *     FMA) the division's own residual, so that exp's rounding does not add to the
 *     quotient's.
 *   relu(x): x < 0 ? 0 : x  (NaN stays NaN, -0 stays -0: PyTorch's results).
 * Measured errors are in vmath.h. */

#include <stdint.h>
#include <string.h>

#ifndef VM_NAME
#error "define VM_NAME(name) before including vmath_impl.h"
#endif

#define VM_STATIC static inline __attribute__((always_inline))

#ifdef VM_HAVE_FMA
#define VM_MADD64(a, b, c) __builtin_fma((a), (b), (c))
#else
#define VM_MADD64(a, b, c) ((a) * (b) + (c))
#endif

/* VM_FMA32(a, b, c): float32 a*b + c rounded once (VM_FUSED 1): the FMA instruction where
 * the including file has it (VM_HAVE_FMA: the AVX2, AVX-512 and generic-FMA files, run
 * only on CPUs with FMA), or the compiler's fmaf off x86, where the generic build is the
 * only one and fmaf is the hardware's. The x86 baseline build (vmath.c, what an x86 CPU
 * without FMA runs) multiplies and adds (VM_FUSED 0): a software fmaf costs 25-120 ns
 * there. So every level gives the same float32 bits on any CPU with FMA, and on other
 * architectures the bits of those levels; x86 CPUs without FMA get their own, within the
 * same error bounds (tests/test_vmath.py checks the baseline build on every CPU). */
#if defined(VM_HAVE_FMA) || !(defined(__x86_64__) || defined(__i386__))
#define VM_FMA32(a, b, c) __builtin_fmaf((a), (b), (c))
#define VM_FUSED 1
#else
#define VM_FMA32(a, b, c) ((a) * (b) + (c))
#define VM_FUSED 0
#endif

VM_STATIC uint32_t VM_NAME(bits32)(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
VM_STATIC float VM_NAME(float32)(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
VM_STATIC uint64_t VM_NAME(bits64)(double f) {
    uint64_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
VM_STATIC double VM_NAME(float64)(uint64_t u) {
    double f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ------------------------------------------------------------------ float32 */

/* The float32 exp's argument reduction, shared by exp_f32 and sigmoid_f32: for xc in
 * [-104, 88.8], n = round(xc / ln2) (*n), r = xc - n ln2 (returned; ln2 in two parts, n *
 * ln2_hi exact) and *q = q(r), so that exp(r) = 1 + r + r^2 q(r). */
VM_STATIC float VM_NAME(exp_reduce_f32)(float xc, int32_t *n, float *q) {
    const float shift = 0x1.8p23f, log2e = 0x1.715476p0f;
    const float ln2_hi = 0x1.62e4p-1f, ln2_lo = 0x1.7f7d1cp-20f; /* hi: 15 bits */
    float t = VM_FMA32(xc, log2e, shift);
    float nf = t - shift;                                                /* round(x/ln2) */
    *n = (int32_t)(VM_NAME(bits32)(t) - VM_NAME(bits32)(shift));      /* the same, as int */
    float r = VM_FMA32(-nf, ln2_lo, VM_FMA32(-nf, ln2_hi, xc)); /* nf * ln2_hi exact */
    float c = 0x1.6d113cp-10f;
    c = VM_FMA32(c, r, 0x1.120ba2p-7f);
    c = VM_FMA32(c, r, 0x1.55551ap-5f);
    c = VM_FMA32(c, r, 0x1.5554dcp-3f);
    *q = VM_FMA32(c, r, 0x1p-1f);
    return r;
}

VM_STATIC float VM_NAME(exp_f32)(float x) {
    /* clamp (a NaN fails the first comparison and takes 88.8; x is put back at the end) */
    float xc = x < 88.8f ? x : 88.8f;
    xc = xc > -104.0f ? xc : -104.0f;
    int32_t n;
    float q;
    float r = VM_NAME(exp_reduce_f32)(xc, &n, &q);
#if VM_FUSED
    float p = VM_FMA32(r, VM_FMA32(r, q, 1.0f), 1.0f); /* 1 + r (1 + r q): one rounding last */
#else
    float p = 1.0f + (r + (r * r) * q); /* (the fused form's 1 + r (1 + r q) loses 0.2 ulp) */
#endif
    /* n1 = floor(n / 2) with an unsigned shift, n2 = n - n1: each in [-75, 64], so both
     * scales are normal numbers */
    int32_t n1 = (int32_t)((uint32_t)(n + 256) >> 1) - 128, n2 = n - n1;
    float s1 = VM_NAME(float32)((uint32_t)(n1 + 127) << 23);
    float s2 = VM_NAME(float32)((uint32_t)(n2 + 127) << 23);
    float y = (p * s1) * s2;
    return x != x ? x : y;
}

VM_STATIC float VM_NAME(log_f32)(float x) {
    const float ln2_hi = 0x1.62e4p-1f, ln2_lo = 0x1.7f7d1cp-20f;
    int sub = x < 0x1p-126f;
    float xs = sub ? x * 0x1p23f : x;
    uint32_t u = VM_NAME(bits32)(xs);
    /* bias the exponent so that the mantissa lands in [sqrt(1/2), sqrt(2)) */
    u += 0x3f800000u - 0x3f3504f3u;
    int32_t k = (int32_t)(u >> 23) - 127 - (sub ? 23 : 0);
    float m = VM_NAME(float32)((u & 0x007fffffu) + 0x3f3504f3u);
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s;
    float R = 0x1.2eeb8p-2f;
    R = VM_FMA32(R, z, 0x1.997c12p-2f);
    R = VM_FMA32(R, z, 0x1.55555cp-1f);
    R = R * z;
    float hfsq = 0.5f * f * f;
    float kf = (float)k;
    float y = VM_FMA32(kf, ln2_hi, f - (hfsq - VM_FMA32(s, hfsq + R, kf * ln2_lo)));
    y = x == 0.0f ? -__builtin_inff() : y;
    y = x < 0.0f ? __builtin_nanf("") : y;
    y = x == __builtin_inff() ? x : y;
    return x != x ? x : y;
}

VM_STATIC float VM_NAME(tanh_f32)(float x) {
    uint32_t sign = VM_NAME(bits32)(x) & 0x80000000u;
    float a = VM_NAME(float32)(VM_NAME(bits32)(x) & 0x7fffffffu);
    float a2 = a * a;
    float P = 0x1.f4908ap-10f;
    P = VM_FMA32(P, a2, -0x1.03f99ap-7f);
    P = VM_FMA32(P, a2, 0x1.622538p-6f);
    P = VM_FMA32(P, a2, -0x1.b9d7aep-5f);
    P = VM_FMA32(P, a2, 0x1.111042p-3f);
    P = VM_FMA32(P, a2, -0x1.555554p-2f);
    float small = VM_FMA32(a * a2, P, a);
    float e = VM_NAME(exp_f32)(a + a);
    float big = 1.0f - 2.0f / (e + 1.0f);
    float t = a < 0.75f ? small : big;
    return VM_NAME(float32)(VM_NAME(bits32)(t) | sign);
}

/* The float32 exp's steps (see exp_f32) on -|x|, with e = exp(-|x|) kept as e_hi + e_lo
 * and scaled by 2^64 (so that every e >= 2^-150 is a normal number with one scaling), then
 * num / (1 + e) with the quotient corrected for the division's residual (exact with an
 * FMA) and for e_lo and the rounding of 1 + e. */
VM_STATIC float VM_NAME(sigmoid_f32)(float x) {
    const float two64 = 0x1p64f;
    float na = VM_NAME(float32)(VM_NAME(bits32)(x) | 0x80000000u); /* -|x| */
    /* clamped, NaN included: a NaN fails the comparison and takes -104 (the result is put
     * back at the end); one max, where a separate NaN test cost 14% of the forward */
    na = na >= -104.0f ? na : -104.0f;
    int32_t n; /* in [-150, 0] */
    float q;
    float r = VM_NAME(exp_reduce_f32)(na, &n, &q);
#if VM_FUSED
    /* e^r = 1 + r h, h = 1 + r q (exp_f32's form), as p_hi + p_lo: p_lo = the rounding
     * error of p_hi (1 - p_hi is exact, p_hi being in [0.7, 1.42]), to 2^-48 relatively */
    float h = VM_FMA32(r, q, 1.0f);
    float p_hi = VM_FMA32(r, h, 1.0f);
    float p_lo = VM_FMA32(r, h, 1.0f - p_hi);
#else
    float w = r + (r * r) * q;
    float p_hi = 1.0f + w;
    float p_lo = w - (p_hi - 1.0f); /* p_hi + p_lo = 1 + w exactly (Fast2Sum) */
#endif
    /* 2^(n + 64): n + 64 >= -87, a normal number, so both products are exact */
    float sc = VM_NAME(float32)((uint32_t)(n + 64 + 127) << 23);
    float e_hi = p_hi * sc, e_lo = p_lo * sc; /* 2^64 exp(-|x|) ~ e_hi + e_lo */
    float d = two64 + e_hi;
    float d_lo = ((two64 - d) + e_hi) + e_lo; /* 2^64 (1 + e) ~ d + d_lo */
    /* num = x < 0 ? e_hi : 2^64, picked with the sign bit as a mask (-0 takes e_hi = 2^64,
     * the same value): written as a select, the compiler divided both candidates by d and
     * picked a quotient, two divisions a lane (float32 sigmoid 1.3x slower on AVX-512) */
    uint32_t neg = (uint32_t)((int32_t)VM_NAME(bits32)(x) >> 31);
    float num = VM_NAME(float32)((VM_NAME(bits32)(e_hi) & neg) | (0x5f800000u & ~neg));
    float num_lo = VM_NAME(float32)(VM_NAME(bits32)(e_lo) & neg);
    float y0 = num / d;
    /* ~ 1 / d: y0 / 2^64 for x >= 0, (1 - y0) / 2^64 for x < 0 (normal, exact scalings) */
    float inv = (x < 0.0f ? 1.0f - y0 : y0) * 0x1p-64f;
    /* (num + num_lo) / (d + d_lo) ~ y0 + (num - y0 d + num_lo - y0 d_lo) / d, the
     * division's residual num - y0 d exact by FMA; without FMA (where y0 d would round by
     * as much as the residual) it is left out, as the quotient's own rounding */
#if VM_FUSED
    float res = VM_FMA32(-y0, d, num) + num_lo;
#else
    float res = num_lo;
#endif
    float y = VM_FMA32(VM_FMA32(-y0, d_lo, res), inv, y0);
    return x != x ? x : y;
}

VM_STATIC float VM_NAME(relu_f32)(float x) { return x < 0.0f ? 0.0f : x; }

/* ------------------------------------------------------------------ float64 */

VM_STATIC double VM_NAME(exp_f64)(double x) {
    const double shift = 0x1.8p52, log2e = 0x1.71547652b82fep0;
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33; /* hi: 32 bits */
    double xc = x < 709.8 ? x : 709.8; /* a NaN takes 709.8; x is put back at the end */
    xc = xc > -746.0 ? xc : -746.0;
    double t = xc * log2e + shift;
    double nf = t - shift;
    int64_t n = (int64_t)(VM_NAME(bits64)(t) - VM_NAME(bits64)(shift));
    double r = (xc - nf * ln2_hi) - nf * ln2_lo;
    double q = 0x1.1f731ea5352cap-29;
    q = q * r + 0x1.af4e196027428p-26;
    q = q * r + 0x1.27e4db57442fbp-22;
    q = q * r + 0x1.71de021a90822p-19;
    q = q * r + 0x1.a01a01a6dcaffp-16;
    q = q * r + 0x1.a01a01abef415p-13;
    q = q * r + 0x1.6c16c16c162ccp-10;
    q = q * r + 0x1.11111111100cep-7;
    q = q * r + 0x1.5555555555556p-5;
    q = q * r + 0x1.5555555555557p-3;
    q = q * r + 0x1p-1;
    double p = 1.0 + (r + (r * r) * q);
    int64_t n1 = (int64_t)((uint64_t)(n + 2048) >> 1) - 1024, n2 = n - n1; /* [-538, 513] */
    double s1 = VM_NAME(float64)((uint64_t)(n1 + 1023) << 52);
    double s2 = VM_NAME(float64)((uint64_t)(n2 + 1023) << 52);
    double y = (p * s1) * s2;
    return x != x ? x : y;
}

VM_STATIC double VM_NAME(log_f64)(double x) {
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33;
    int64_t sub = x < 0x1p-1022;
    double xs = sub ? x * 0x1p52 : x;
    uint64_t u = VM_NAME(bits64)(xs);
    u += 0x3ff0000000000000u - 0x3fe6a09e667f3bcdu;
    /* k as a double without an int64 -> double conversion (AVX2 has none): the biased
     * exponent e in [0, 2047] is exact in 2^52 + e */
    double kf = (VM_NAME(float64)(0x4330000000000000u | (u >> 52)) - 0x1p52) - 1023.0;
    kf = sub ? kf - 52.0 : kf;
    double m = VM_NAME(float64)((u & 0x000fffffffffffffu) + 0x3fe6a09e667f3bcdu);
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double R = 0x1.2b6688a387e03p-3;
    R = R * z + 0x1.39fd392179a95p-3;
    R = R * z + 0x1.7462bd8f7796ep-3;
    R = R * z + 0x1.c71c62c639fdep-3;
    R = R * z + 0x1.2492492e09d4dp-2;
    R = R * z + 0x1.9999999995204p-2;
    R = R * z + 0x1.5555555555558p-1;
    R = R * z;
    double hfsq = 0.5 * f * f;
    double y = (kf * ln2_hi + (f - (hfsq - (s * (hfsq + R) + kf * ln2_lo))));
    y = x == 0.0 ? -__builtin_inf() : y;
    y = x < 0.0 ? __builtin_nan("") : y;
    y = x == __builtin_inf() ? x : y;
    return x != x ? x : y;
}

VM_STATIC double VM_NAME(tanh_f64)(double x) {
    uint64_t sign = VM_NAME(bits64)(x) & 0x8000000000000000u;
    double a = VM_NAME(float64)(VM_NAME(bits64)(x) & 0x7fffffffffffffffu);
    double a2 = a * a;
    double P = -0x1.47559de55bc91p-19;
    P = P * a2 + 0x1.99b26df70cccdp-17;
    P = P * a2 - 0x1.370efd62e9535p-15;
    P = P * a2 + 0x1.92d3563b405ccp-14;
    P = P * a2 - 0x1.f4fccb8116f0ap-13;
    P = P * a2 + 0x1.355204d5878bep-11;
    P = P * a2 - 0x1.7da2fd76a3cf1p-10;
    P = P * a2 + 0x1.d6d3cc561e69ap-9;
    P = P * a2 - 0x1.226e354ddfe9ap-7;
    P = P * a2 + 0x1.664f488279254p-6;
    P = P * a2 - 0x1.ba1ba1ba1aff0p-5;
    P = P * a2 + 0x1.111111111110dp-3;
    P = P * a2 - 0x1.5555555555555p-2;
    double small = a + (a * a2) * P;
    double e = VM_NAME(exp_f64)(a + a);
    double big = 1.0 - 2.0 / (e + 1.0);
    double t = a < 0.625 ? small : big;
    return VM_NAME(float64)(VM_NAME(bits64)(t) | sign);
}

VM_STATIC double VM_NAME(sigmoid_f64)(double x) {
    double na = VM_NAME(float64)(VM_NAME(bits64)(x) | 0x8000000000000000u);
    double e = VM_NAME(exp_f64)(na);
    double num = x < 0.0 ? e : 1.0;
    return num / (1.0 + e);
}

VM_STATIC double VM_NAME(relu_f64)(double x) { return x < 0.0 ? 0.0 : x; }

/* ------------------------------------------------------------------ float32 pow, in double
 * a ** b for float32 a and a double (or float32) b as e^(b log a) in float64, rounded once
 * to float32, in the lanes where that rounding is certain to be the one of
 * (float)pow((double)a, b) with a libm pow within 1 ulp; every other lane is NaN, and the
 * caller computes it with libm (ops/pow.c). The fast path never gives NaN, so NaN marks
 * exactly the lanes left to the caller.
 *
 *   log a (pow_log_f64, a > 0 finite float32, taken as a double, so float32 subnormals
 *     are normal): a = 2^k z, z in [0.748, 1.496), 128 intervals of z by the top bits of
 *     its (offset) mantissa; c = POW_INVC[i] ~
 *     1 / (the interval's centre) with 28 significant bits (1 exactly for the interval
 *     [1 - 2^-9, 1 + 2^-8) around 1), so r = z c - 1 is exact, |r| <= 2^-8;
 *     log a = (k ln2_hi + POW_LOGC[i]) + (log1p(r) + k ln2_lo), POW_LOGC[i] = -log c rounded,
 *     log1p(r) = r + r^2 q(r) by Taylor to r^6 (truncation r^6 / 7 <= 2^-50.8 relatively).
 *     Near a = 1 (k = 0, c = 1) the result keeps its relative accuracy; elsewhere the terms
 *     add with at most ~3x cancellation: |error| <= 2^-50 |log a|.
 *   e^p (pow_exp_f64): p = (n + r 128 / ln2) ln2 / 128, |r| <= ln2 / 256, n = 128 e + j;
 *     e^p = 2^e POW_EXP2[j] (1 + r + r^2 (1/2 + r/6 + r^2/24)) (truncation r^5 / 120 <=
 *     2^-49.6), 2^e put into the exponent bits. Kept only for p in [-110, 100] (p > 100
 *     gives inf, p < -110 falls back: the float32 result is 0 or inf there).
 * The tables are correctly rounded float64 values; tests/test_pow.py recomputes them with
 * Python's decimal module and checks every digit.
 *
 * Why the rounding is certain: the double p = b * log a is within 2^-50 |t| + 2^-53 |t|
 * of t = b ln a, and |p| <= 110 wherever the lane is kept (the result is a normal float32
 * or inf), so e^p is within 2^-43 of e^t relatively, and pow_exp_f64 adds under 2^-49:
 * y is within 2^10 units of its last bit (2^-53 y each, at least) of the exact power.
 * A float32 rounding depends on the 29 bits of y below float32's 24: the lane is kept only
 * when those bits are more than VM_POW_GUARD = 2^18 units away from the halfway pattern
 * 2^28, so the exact power, and a libm pow within 1 ulp of it, round to the same float32
 * as y does: 2^8 times the margin the error bound needs. About 2^-10 of the lanes fall
 * back that way. Lanes kept: a > 0 finite, y >= 2^-126 (a normal float32, or inf where
 * the exact power overflows float32: y >= 2^128 rounds to inf like anything within 2^-43
 * of it). Results in the float32 subnormal range, and a <= 0, inf, NaN, b NaN, fall
 * back. */
#define VM_POW_GUARD 0x40000u

static const double VM_NAME(POW_INVC)[128] = {
    0x1.5555556000000p+0, 0x1.5390948000000p+0, 0x1.51d07ea000000p+0,
    0x1.5015016000000p+0, 0x1.4e5e0a8000000p+0, 0x1.4cab888000000p+0,
    0x1.4afd6a0000000p+0, 0x1.49539e4000000p+0, 0x1.47ae148000000p+0,
    0x1.460cbc8000000p+0, 0x1.446f866000000p+0, 0x1.42d6626000000p+0,
    0x1.4141414000000p+0, 0x1.3fb0140000000p+0, 0x1.3e22cbc000000p+0,
    0x1.3c995a4000000p+0, 0x1.3b13b14000000p+0, 0x1.3991c2c000000p+0,
    0x1.3813814000000p+0, 0x1.3698df4000000p+0, 0x1.3521cfc000000p+0,
    0x1.33ae45c000000p+0, 0x1.323e34a000000p+0, 0x1.30d1902000000p+0,
    0x1.2f684be000000p+0, 0x1.2e025c0000000p+0, 0x1.2c9fb4e000000p+0,
    0x1.2b404ae000000p+0, 0x1.29e412a000000p+0, 0x1.288b012000000p+0,
    0x1.27350b8000000p+0, 0x1.25e2270000000p+0, 0x1.2492492000000p+0,
    0x1.2345678000000p+0, 0x1.21fb782000000p+0, 0x1.20b470c000000p+0,
    0x1.1f7047e000000p+0, 0x1.1e2ef3c000000p+0, 0x1.1cf06ae000000p+0,
    0x1.1bb4a40000000p+0, 0x1.1a7b962000000p+0, 0x1.1945380000000p+0,
    0x1.1811812000000p+0, 0x1.16e068a000000p+0, 0x1.15b1e60000000p+0,
    0x1.1485f0e000000p+0, 0x1.135c812000000p+0, 0x1.12358e8000000p+0,
    0x1.1111112000000p+0, 0x1.0fef010000000p+0, 0x1.0ecf56c000000p+0,
    0x1.0db20a8000000p+0, 0x1.0c97150000000p+0, 0x1.0b7e6ec000000p+0,
    0x1.0a6810a000000p+0, 0x1.0953f3a000000p+0, 0x1.0842108000000p+0,
    0x1.073260a000000p+0, 0x1.0624dd2000000p+0, 0x1.05197f8000000p+0,
    0x1.0410410000000p+0, 0x1.03091b6000000p+0, 0x1.0204082000000p+0,
    0x1.0101010000000p+0, 0x1.0000000000000p+0, 0x1.fc07f02000000p-1,
    0x1.f81f820000000p-1, 0x1.f44659e000000p-1, 0x1.f07c1f0000000p-1,
    0x1.ecc07b4000000p-1, 0x1.e9131ac000000p-1, 0x1.e573aca000000p-1,
    0x1.e1e1e1e000000p-1, 0x1.de5d6e4000000p-1, 0x1.dae6076000000p-1,
    0x1.d77b654000000p-1, 0x1.d41d41e000000p-1, 0x1.d0cb590000000p-1,
    0x1.cd8568a000000p-1, 0x1.ca4b306000000p-1, 0x1.c71c71c000000p-1,
    0x1.c3f8f02000000p-1, 0x1.c0e0704000000p-1, 0x1.bdd2b8a000000p-1,
    0x1.bacf914000000p-1, 0x1.b7d6c3e000000p-1, 0x1.b4e81b4000000p-1,
    0x1.b203640000000p-1, 0x1.af286bc000000p-1, 0x1.ac5701a000000p-1,
    0x1.a98ef60000000p-1, 0x1.a6d01a6000000p-1, 0x1.a41a41a000000p-1,
    0x1.a16d3fa000000p-1, 0x1.9ec8e96000000p-1, 0x1.9c2d14e000000p-1,
    0x1.999999a000000p-1, 0x1.970e4f8000000p-1, 0x1.948b0fc000000p-1,
    0x1.920fb4a000000p-1, 0x1.8f9c190000000p-1, 0x1.8d3018e000000p-1,
    0x1.8acb910000000p-1, 0x1.886e5f0000000p-1, 0x1.8618618000000p-1,
    0x1.83c977a000000p-1, 0x1.8181818000000p-1, 0x1.7f405fe000000p-1,
    0x1.7d05f42000000p-1, 0x1.7ad2208000000p-1, 0x1.78a4c82000000p-1,
    0x1.767dce4000000p-1, 0x1.745d174000000p-1, 0x1.7242880000000p-1,
    0x1.702e05c000000p-1, 0x1.6e1f76c000000p-1, 0x1.6c16c16000000p-1,
    0x1.6a13cd2000000p-1, 0x1.6816816000000p-1, 0x1.661ec6a000000p-1,
    0x1.642c85a000000p-1, 0x1.623fa78000000p-1, 0x1.6058160000000p-1,
    0x1.5e75bb8000000p-1, 0x1.5c9882c000000p-1, 0x1.5ac056c000000p-1,
    0x1.58ed230000000p-1, 0x1.571ed3c000000p-1,
};
static const double VM_NAME(POW_LOGC)[128] = {
    -0x1.269621334db92p-2, -0x1.214456a2eb8d4p-2, -0x1.1bf9960aa6b95p-2,
    -0x1.16b5cceb4fb73p-2, -0x1.1178e84a7e47cp-2, -0x1.0c42d6a0162e3p-2,
    -0x1.071385f4d5862p-2, -0x1.01eae5716c691p-2, -0x1.f991c6eb3b379p-3,
    -0x1.ef5ade51cffe6p-3, -0x1.e530f03c71012p-3, -0x1.db13db1e48940p-3,
    -0x1.d1037f1e55e7bp-3, -0x1.c6ffbc8f00f71p-3, -0x1.bd087327bd8adp-3,
    -0x1.b31d8543bce3dp-3, -0x1.a93ed3e8ad9e3p-3, -0x1.9f6c406689664p-3,
    -0x1.95a5ae037017fp-3, -0x1.8beafec18fe8cp-3, -0x1.823c16ad1a3c2p-3,
    -0x1.7898d89a44c73p-3, -0x1.6f0128a556abcp-3, -0x1.6574ec3fc133ap-3,
    -0x1.5bf406dd43db2p-3, -0x1.527e5e2a1b58dp-3, -0x1.4913d8693b561p-3,
    -0x1.3fb45ac6928cbp-3, -0x1.365fcb0d59016p-3, -0x1.2d16108d6813ap-3,
    -0x1.23d7126c9c202p-3, -0x1.1aa2b7aa3f72ap-3, -0x1.1178e8027e47cp-3,
    -0x1.08598b15e3a06p-3, -0x1.fe891461bd565p-4, -0x1.ec7397d4a1120p-4,
    -0x1.da727670446a2p-4, -0x1.c88580c7c4b23p-4, -0x1.b6ac892ed5b1cp-4,
    -0x1.a4e763cb1bc38p-4, -0x1.9335e6a594988p-4, -0x1.8197e2740e3f0p-4,
    -0x1.700d3122ac0e1p-4, -0x1.5e95a587791cbp-4, -0x1.4d31165207eacp-4,
    -0x1.3bdf5a731ee64p-4, -0x1.2aa04b00717a4p-4, -0x1.1973bdac65567p-4,
    -0x1.08598c39e3a06p-4, -0x1.eea31a206b87bp-5, -0x1.ccb73d0ddb2ccp-5,
    -0x1.aaef2bffb10fcp-5, -0x1.894aa1c9fb343p-5, -0x1.67c94ee54bb58p-5,
    -0x1.466aec7ade3e9p-5, -0x1.252f34e4d183ep-5, -0x1.0415d81e74444p-5,
    -0x1.c63d2da94aaf1p-6, -0x1.84924edc8cabdp-6, -0x1.432a92f980cc1p-6,
    -0x1.0205648935847p-6, -0x1.824491288a2a7p-7, -0x1.01015f388de6dp-7,
    -0x1.0080549588b35p-8, 0x0p+0, 0x1.fe02a69106789p-8,
    0x1.fc0a890fc03e4p-7, 0x1.7b91b1155b11bp-6, 0x1.f829b1e783300p-6,
    0x1.39e87a97ebd60p-5, 0x1.77458f532dcfcp-5, 0x1.b42dd605971bfp-5,
    0x1.f0a30c21162a6p-5, 0x1.16536ee637ae1p-4, 0x1.341d79c5bd1d1p-4,
    0x1.51b074546183fp-4, 0x1.6f0d284656b4cp-4, 0x1.8c345d1319b21p-4,
    0x1.a926d318ad564p-4, 0x1.c5e5489bbc743p-4, 0x1.e2707722af2e6p-4,
    0x1.fec912fbbeabbp-4, 0x1.0d77e7a908e59p-3, 0x1.1b72ad33f67a0p-3,
    0x1.29552fb9ff523p-3, 0x1.371fc1f6e8f74p-3, 0x1.44d2b710b7d1ep-3,
    0x1.526e5e5a1b438p-3, 0x1.5ff3073a793d4p-3, 0x1.6d60feac9d21dp-3,
    0x1.7ab890410d909p-3, 0x1.87fa06910c911p-3, 0x1.9525a9e3456b4p-3,
    0x1.a23bc1d52b563p-3, 0x1.af3c949e0bff3p-3, 0x1.bc286789d8cd6p-3,
    0x1.c8ff7c59a9a22p-3, 0x1.d5c216b8fbb91p-3, 0x1.e2707726af2e6p-3,
    0x1.ef0adcaec5936p-3, 0x1.fb9186b5e3e2bp-3, 0x1.04025929cd041p-2,
    0x1.0a324e0f390e3p-2, 0x1.1058bfb6e4ad5p-2, 0x1.1675cacaba60ep-2,
    0x1.1c898c34199fbp-2, 0x1.22941fc0f7966p-2, 0x1.2895a113686a3p-2,
    0x1.2e8e2b9811d31p-2, 0x1.347dd9cf87d55p-2, 0x1.3a64c53f945eap-2,
    0x1.404308716a7e4p-2, 0x1.4618bc31c5ec2p-2, 0x1.4be5f937778a1p-2,
    0x1.51aad874df82dp-2, 0x1.5767715355a6cp-2, 0x1.5d1bdc17809cap-2,
    0x1.62c82f0d1c795p-2, 0x1.686c8200b14afp-2, 0x1.6e08eab13a1e4p-2,
    0x1.739d7f3fbd007p-2, 0x1.792a55cfd47a3p-2, 0x1.7eaf83c82afc3p-2,
    0x1.842d1dc7e8b17p-2, 0x1.89a338581425bp-2, 0x1.8f11e844662c8p-2,
    0x1.947941da116fbp-2, 0x1.99d958207e08bp-2,
};
static const double VM_NAME(POW_EXP2)[128] = { /* 2^(j/128) */
    0x1.0000000000000p+0, 0x1.0163da9fb3335p+0, 0x1.02c9a3e778061p+0,
    0x1.04315e86e7f85p+0, 0x1.059b0d3158574p+0, 0x1.0706b29ddf6dep+0,
    0x1.0874518759bc8p+0, 0x1.09e3ecac6f383p+0, 0x1.0b5586cf9890fp+0,
    0x1.0cc922b7247f7p+0, 0x1.0e3ec32d3d1a2p+0, 0x1.0fb66affed31bp+0,
    0x1.11301d0125b51p+0, 0x1.12abdc06c31ccp+0, 0x1.1429aaea92de0p+0,
    0x1.15a98c8a58e51p+0, 0x1.172b83c7d517bp+0, 0x1.18af9388c8deap+0,
    0x1.1a35beb6fcb75p+0, 0x1.1bbe084045cd4p+0, 0x1.1d4873168b9aap+0,
    0x1.1ed5022fcd91dp+0, 0x1.2063b88628cd6p+0, 0x1.21f49917ddc96p+0,
    0x1.2387a6e756238p+0, 0x1.251ce4fb2a63fp+0, 0x1.26b4565e27cddp+0,
    0x1.284dfe1f56381p+0, 0x1.29e9df51fdee1p+0, 0x1.2b87fd0dad990p+0,
    0x1.2d285a6e4030bp+0, 0x1.2ecafa93e2f56p+0, 0x1.306fe0a31b715p+0,
    0x1.32170fc4cd831p+0, 0x1.33c08b26416ffp+0, 0x1.356c55f929ff1p+0,
    0x1.371a7373aa9cbp+0, 0x1.38cae6d05d866p+0, 0x1.3a7db34e59ff7p+0,
    0x1.3c32dc313a8e5p+0, 0x1.3dea64c123422p+0, 0x1.3fa4504ac801cp+0,
    0x1.4160a21f72e2ap+0, 0x1.431f5d950a897p+0, 0x1.44e086061892dp+0,
    0x1.46a41ed1d0057p+0, 0x1.486a2b5c13cd0p+0, 0x1.4a32af0d7d3dep+0,
    0x1.4bfdad5362a27p+0, 0x1.4dcb299fddd0dp+0, 0x1.4f9b2769d2ca7p+0,
    0x1.516daa2cf6642p+0, 0x1.5342b569d4f82p+0, 0x1.551a4ca5d920fp+0,
    0x1.56f4736b527dap+0, 0x1.58d12d497c7fdp+0, 0x1.5ab07dd485429p+0,
    0x1.5c9268a5946b7p+0, 0x1.5e76f15ad2148p+0, 0x1.605e1b976dc09p+0,
    0x1.6247eb03a5585p+0, 0x1.6434634ccc320p+0, 0x1.6623882552225p+0,
    0x1.68155d44ca973p+0, 0x1.6a09e667f3bcdp+0, 0x1.6c012750bdabfp+0,
    0x1.6dfb23c651a2fp+0, 0x1.6ff7df9519484p+0, 0x1.71f75e8ec5f74p+0,
    0x1.73f9a48a58174p+0, 0x1.75feb564267c9p+0, 0x1.780694fde5d3fp+0,
    0x1.7a11473eb0187p+0, 0x1.7c1ed0130c132p+0, 0x1.7e2f336cf4e62p+0,
    0x1.80427543e1a12p+0, 0x1.82589994cce13p+0, 0x1.8471a4623c7adp+0,
    0x1.868d99b4492edp+0, 0x1.88ac7d98a6699p+0, 0x1.8ace5422aa0dbp+0,
    0x1.8cf3216b5448cp+0, 0x1.8f1ae99157736p+0, 0x1.9145b0b91ffc6p+0,
    0x1.93737b0cdc5e5p+0, 0x1.95a44cbc8520fp+0, 0x1.97d829fde4e50p+0,
    0x1.9a0f170ca07bap+0, 0x1.9c49182a3f090p+0, 0x1.9e86319e32323p+0,
    0x1.a0c667b5de565p+0, 0x1.a309bec4a2d33p+0, 0x1.a5503b23e255dp+0,
    0x1.a799e1330b358p+0, 0x1.a9e6b5579fdbfp+0, 0x1.ac36bbfd3f37ap+0,
    0x1.ae89f995ad3adp+0, 0x1.b0e07298db666p+0, 0x1.b33a2b84f15fbp+0,
    0x1.b59728de5593ap+0, 0x1.b7f76f2fb5e47p+0, 0x1.ba5b030a1064ap+0,
    0x1.bcc1e904bc1d2p+0, 0x1.bf2c25bd71e09p+0, 0x1.c199bdd85529cp+0,
    0x1.c40ab5fffd07ap+0, 0x1.c67f12e57d14bp+0, 0x1.c8f6d9406e7b5p+0,
    0x1.cb720dcef9069p+0, 0x1.cdf0b555dc3fap+0, 0x1.d072d4a07897cp+0,
    0x1.d2f87080d89f2p+0, 0x1.d5818dcfba487p+0, 0x1.d80e316c98398p+0,
    0x1.da9e603db3285p+0, 0x1.dd321f301b460p+0, 0x1.dfc97337b9b5fp+0,
    0x1.e264614f5a129p+0, 0x1.e502ee78b3ff6p+0, 0x1.e7a51fbc74c83p+0,
    0x1.ea4afa2a490dap+0, 0x1.ecf482d8e67f1p+0, 0x1.efa1bee615a27p+0,
    0x1.f252b376bba97p+0, 0x1.f50765b6e4540p+0, 0x1.f7bfdad9cbe14p+0,
    0x1.fa7c1819e90d8p+0, 0x1.fd3c22b8f71f1p+0,
};

/* log a in double, for a > 0 finite (a float32 value; float32 subnormals are normal
 * doubles); any other a gives some value, without trapping, that the caller discards.
 * Integer steps on the double's bits, so that every step has the double's lane width. */
VM_STATIC double VM_NAME(pow_log_f64)(double a) {
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33;
    const uint64_t off = 0x3fe7f00000000000u; /* 0.748046875: z in [off, off + 2^52) */
    uint64_t u = VM_NAME(bits64)(a);
    /* the biased k + 1024 = floor((u - off) / 2^52) + 1024, kept unsigned: u - off + 2^62
     * is in (0, 2^64) */
    uint64_t kb = (u - off + 0x4000000000000000u) >> 52;
    int64_t i = (int64_t)(((u - off) >> 45) & 127u);
    double z = VM_NAME(float64)(u - ((kb - 1024u) << 52));
    /* k as a double without an int64 -> double conversion (AVX2 has none) */
    double kf = (VM_NAME(float64)(0x4330000000000000u | kb) - 0x1p52) - 1024.0;
    double r = VM_MADD64(z, VM_NAME(POW_INVC)[i], -1.0); /* exact either way */
    double q = -0x1.5555555555555p-3;                     /* -1/6 */
    q = VM_MADD64(q, r, 0x1.999999999999ap-3);            /* 1/5 */
    q = VM_MADD64(q, r, -0x1p-2);
    q = VM_MADD64(q, r, 0x1.5555555555555p-2);            /* 1/3 */
    q = VM_MADD64(q, r, -0x1p-1);
    double lp = VM_MADD64(r * r, q, r);
    /* kf * ln2_hi is exact (ln2_hi has 32 bits, |kf| < 2^8) */
    return VM_MADD64(kf, ln2_hi, VM_NAME(POW_LOGC)[i]) + VM_MADD64(kf, ln2_lo, lp);
}

/* e^p in double for p in [-110, 100]; any other p (NaN included) gives some value, without
 * trapping, that pow_checked replaces. p is not clamped: a clamp to a constant would let
 * the compiler specialise the table load on that path and make it a masked gather, which
 * it does not vectorize. Integer steps are unsigned, so that no p overflows them. */
VM_STATIC double VM_NAME(pow_exp_f64)(double p) {
    const double shift = 0x1.8p52, inv = 0x1.71547652b82fep+7; /* 128 / ln2 */
    const double l_hi = 0x1.62e42fefa0000p-8, l_lo = 0x1.cf79abc9e3b3ap-47; /* ln2 / 128 */
    double t = VM_MADD64(p, inv, shift);
    double nf = t - shift;
    uint64_t n = VM_NAME(bits64)(t) - VM_NAME(bits64)(shift); /* round(p 128 / ln2) mod 2^64 */
    /* nf * l_hi exact: l_hi has 37 bits, |nf| < 2^15 */
    double r = VM_MADD64(-nf, l_lo, VM_MADD64(-nf, l_hi, p));
    double q = 0x1.5555555555555p-5;        /* 1/24 */
    q = VM_MADD64(q, r, 0x1.5555555555555p-3); /* 1/6 */
    q = VM_MADD64(q, r, 0x1p-1);
    double e = 1.0 + VM_MADD64(r * r, q, r);
    double y = VM_NAME(POW_EXP2)[(int64_t)(n & 127u)] * e;
    /* times 2^m, m = floor(n / 128), computed as (n + 2^20) / 2^7 - 2^13 (n > -2^15): y stays a
     * normal double, so its exponent bits take m exactly */
    uint64_t m = ((n + (1u << 20)) >> 7) - (1u << 13);
    return VM_NAME(float64)(VM_NAME(bits64)(y) + (m << 52));
}

/* e^p when its rounding to float32 is certain (above), else NaN; ok0: 1 where the lane's
 * input qualifies (a > 0 finite). p > 100 gives inf. The verdicts are applied with bit masks
 * after every load (see pow_exp_f64). */
VM_STATIC double VM_NAME(pow_checked)(double p, uint64_t ok0) {
    double y = VM_NAME(pow_exp_f64)(p);
    uint64_t yb = VM_NAME(bits64)(y);
    uint64_t low = yb & 0x1fffffffu; /* the bits float32 rounds off */
    uint64_t big = (uint64_t)(p > 100.0);
    uint64_t ok = (uint64_t)(p >= -110.0) & (uint64_t)(p <= 100.0) &
                  (uint64_t)(y >= 0x1p-126) &
                  (uint64_t)((uint64_t)(low - (0x10000000u - VM_POW_GUARD)) >=
                             (uint64_t)(2 * VM_POW_GUARD));
    ok = ok0 & (ok | big);
    uint64_t mbig = (uint64_t)0 - big, mok = (uint64_t)0 - ok;
    yb = (yb & ~mbig) | (0x7ff0000000000000u & mbig);
    return VM_NAME(float64)((yb & mok) | (0x7ff8000000000000u & ~mok));
}

/* 1 where v > 0 is finite (bits in [1, 0x7fefffffffffffff]), else 0 */
VM_STATIC uint64_t VM_NAME(pos_finite)(double v) {
    return (uint64_t)(VM_NAME(bits64)(v) - 1u < 0x7fefffffffffffffu);
}

/* The general float32 powers below are this level's unless the including file brings its
 * own (VM_POW_F32, VM_POW2_F32, VM_RPOW_F32: vmath_avx512.c's, the same method with smaller
 * tables, so the same bits). */
#ifndef VM_POW_F32
#define VM_OWN_POW 1
#define VM_POW_F32 VM_NAME(pow_f32_scalar_array)
#define VM_POW2_F32 VM_NAME(pow_f32_tensor_array)
#define VM_RPOW_F32 VM_NAME(rpow_f32_array)
#endif

#ifdef VM_OWN_POW
/* y[i] = x[i] ** s, or NaN where the caller must use libm; returns how many NaN lanes */
static int64_t VM_NAME(pow_f32_scalar_array)(const float *restrict x, double s,
                                             float *restrict y, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = (double)x[i];
        double r = VM_NAME(pow_checked)(s * VM_NAME(pow_log_f64)(v),
                                        VM_NAME(pos_finite)(v));
        y[i] = (float)r;
        bad += r != r;
    }
    return bad;
}
#endif

/* y[i] = x[i] ** s for s = q / 2 with q an integer, 1 <= |q| <= 16 (ops/pow.c takes
 * PyTorch's special exponents elsewhere): x^m (m = floor(|s|), by squarings: x, x^2, x^4,
 * x^8 picked by m's bits), times sqrt(x) when |s| has a half, inverted when s < 0, in
 * double; or NaN where the caller must use libm; returns how many NaN lanes. At most 7
 * roundings (multiplies, the correctly rounded square root, the division), each within
 * half a double ulp: under 2^3 units of y's last bit from the exact power, far inside
 * VM_POW_GUARD, so the lanes kept (a > 0 finite, y >= 2^-126 or inf, the rounding certain)
 * are libm's pow rounded to float32, as in pow_f32_scalar_array, at several times the
 * speed (no log, no exp, no table lookups). A squaring that overflows gives inf, which is
 * the float32 result (or, inverted, 0: left to libm); one that underflows leaves y below
 * 2^-126 (left to libm) or, inverted, inf. */
static int64_t VM_NAME(pow_f32_halves_array)(const float *restrict x, double s,
                                             float *restrict y, int64_t n) {
    const double a = s < 0 ? -s : s;
    const int m = (int)a, half = a != (double)m, inv = s < 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = (double)x[i];
        double v2 = v * v, v4 = v2 * v2, v8 = v4 * v4;
        double p = (m & 1 ? v : 1.0) * (m & 2 ? v2 : 1.0);
        p = p * (m & 4 ? v4 : 1.0);
        p = p * (m & 8 ? v8 : 1.0);
        p = half ? p * __builtin_sqrt(v) : p;
        p = inv ? 1.0 / p : p;
        uint64_t yb = VM_NAME(bits64)(p);
        uint64_t low = yb & 0x1fffffffu; /* the bits float32 rounds off (0 for inf) */
        uint64_t ok = VM_NAME(pos_finite)(v) & (uint64_t)(p >= 0x1p-126) &
                      (uint64_t)((uint64_t)(low - (0x10000000u - VM_POW_GUARD)) >=
                                 (uint64_t)(2 * VM_POW_GUARD));
        uint64_t mok = (uint64_t)0 - ok;
        double r = VM_NAME(float64)((yb & mok) | (0x7ff8000000000000u & ~mok));
        y[i] = (float)r;
        bad += r != r;
    }
    return bad;
}

#ifdef VM_OWN_POW
/* y[i] = a[i] ** b[i], or NaN where the caller must use libm; returns how many NaN lanes */
static int64_t VM_NAME(pow_f32_tensor_array)(const float *restrict a, const float *restrict b,
                                             float *restrict y, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = (double)a[i];
        double r = VM_NAME(pow_checked)((double)b[i] * VM_NAME(pow_log_f64)(v),
                                        VM_NAME(pos_finite)(v));
        y[i] = (float)r;
        bad += r != r;
    }
    return bad;
}

/* y[i] = base ** x[i] (log base once), or NaN where the caller must use libm; returns how
 * many NaN lanes (all of them unless base > 0 is finite) */
static int64_t VM_NAME(rpow_f32_array)(double base, const float *restrict x,
                                       float *restrict y, int64_t n) {
    const uint64_t ok0 = VM_NAME(pos_finite)(base);
    const double lb = VM_NAME(pow_log_f64)(base); /* base is a float32 value */
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = VM_NAME(pow_checked)((double)x[i] * lb, ok0);
        y[i] = (float)r;
        bad += r != r;
    }
    return bad;
}
#endif

/* ------------------------------------------------------------------ array kernels
 * y[i] = f(x[i]); gx[i] += g[i] * f'(...) (or = with assign: a fresh gradient slot), the
 * derivative from the input x (log, relu) or
 * the output y (exp, sigmoid, tanh), written as PyTorch's backward formulas. Arrays must
 * not overlap (restrict), except that the tests never need that either. */

#define VM_ARRAY(FN, T, SFX)                                                              \
    static void VM_NAME(FN##_##SFX##_array)(const T *restrict x, T *restrict y, int64_t n) {     \
        for (int64_t i = 0; i < n; i++) y[i] = VM_NAME(FN##_##SFX)(x[i]);                 \
    }

#define VM_GRAD(FN, T, SFX, EXPR)                                                         \
    static void VM_NAME(FN##_grad_##SFX##_array)(const T *restrict a, const T *restrict g,\
                                                 T *restrict gx, int64_t n, int assign) { \
        if (assign) {                                                                     \
            for (int64_t i = 0; i < n; i++) {                                             \
                T v = a[i], w = g[i];                                                     \
                gx[i] = (EXPR);                                                           \
            }                                                                             \
            return;                                                                       \
        }                                                                                 \
        for (int64_t i = 0; i < n; i++) {                                                 \
            T v = a[i], w = g[i];                                                         \
            gx[i] += (EXPR);                                                              \
        }                                                                                 \
    }

#define VM_ALL(T, SFX)                                                                    \
    VM_ARRAY(exp, T, SFX)                                                                 \
    VM_ARRAY(log, T, SFX)                                                                 \
    VM_ARRAY(tanh, T, SFX)                                                                \
    VM_ARRAY(sigmoid, T, SFX)                                                             \
    VM_ARRAY(relu, T, SFX)                                                                \
    VM_GRAD(exp, T, SFX, w * v)                      /* a = y */                          \
    VM_GRAD(log, T, SFX, w / v)                      /* a = x */                          \
    VM_GRAD(tanh, T, SFX, w * ((T)1 - v * v))        /* a = y */                          \
    VM_GRAD(sigmoid, T, SFX, w * ((T)1 - v) * v)     /* a = y */                          \
    VM_GRAD(relu, T, SFX, v <= (T)0 ? (T)0 : w)      /* a = x: NaN passes g, as PyTorch */

VM_ALL(float, f32)
VM_ALL(double, f64)

/* This level's kernels, indexed by TG_VMATH_* (vmath.h). */
#define VM_ROW(KIND) {VM_NAME(exp_##KIND##_array), VM_NAME(log_##KIND##_array),             \
                      VM_NAME(tanh_##KIND##_array), VM_NAME(sigmoid_##KIND##_array),        \
                      VM_NAME(relu_##KIND##_array)}
const tg_vmath_table VM_NAME(tg_vmath_table) = {VM_ROW(f32), VM_ROW(f64), VM_ROW(grad_f32),
                                                VM_ROW(grad_f64),
                                                VM_POW_F32,
                                                VM_NAME(pow_f32_halves_array),
                                                VM_POW2_F32,
                                                VM_RPOW_F32};
#undef VM_ROW
