/* kernels/vmath_impl.h — the elementwise math algorithm, ONE source for every SIMD level.
 *
 * Included by vmath.c (generic C), vmath_avx2.c and vmath_avx512.c, each with its own
 * VM_NAME(suffix) and its own `#pragma GCC target`: the compiler vectorizes the array
 * loops below for that instruction set (8 / 16 float32 lanes). Each element goes through
 * exactly the same IEEE operations whatever the level and whatever its position (vector
 * body or scalar tail), so every level gives the same bits. What makes that hold:
 *   - straight-line code: special cases are computed for every element and selected with
 *     ternaries (the vectorizer turns them into masks and blends), never branched on;
 *   - only +, -, *, / (correctly rounded), bit operations and exact integer <-> float
 *     steps; no libm call, no FMA: a*b+c stays two roundings (the including files turn
 *     contraction off), since the generic x86-64 build has no FMA instruction and C99's
 *     fma() is a slow software call there;
 *   - rounding to an integer with the 1.5 * 2^p shifter (an add), so no rint() variant.
 *
 * Algorithms (coefficients fitted for this file with mpmath's Chebyshev fits, then
 * rounded to the type):
 *   exp(x): n = round(x / ln2), r = x - n ln2 (ln2 in two parts, the high part short
 *     enough that n * hi is exact), exp(r) = 1 + (r + r^2 q(r)), times 2^(n/2) * 2^(n - n/2)
 *     (two exact power-of-two steps, so results in the subnormal range are rounded once).
 *     x is clamped first to a range where the result is already inf / 0.
 *   log(x): x = 2^k m, m in [sqrt(1/2), sqrt(2)) (subnormals scaled by 2^23 / 2^52 first),
 *     f = m - 1, s = f / (2 + f), log(1+f) = f - (f^2/2 - s (f^2/2 + R(s^2))),
 *     plus k ln2 in two parts.
 *   tanh(x): |x| < T: |x| + |x|^3 P(x^2); else 1 - 2 / (exp(2|x|) + 1); the sign of x
 *     put back (so tanh(-0) = -0, tanh(+-large) = +-1 exactly).
 *   sigmoid(x): e = exp(-|x|) in (0, 1]: 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0
 *     (never exp of a large positive number: no overflow, no NaN from a finite x); for
 *     float32, e is kept as e_hi + e_lo (the rounding error of exp's last add, exact by
 *     Fast2Sum) and the quotient gets a first-order correction, so that exp's own rounding
 *     does not add to the quotient's.
 *   relu(x): x < 0 ? 0 : x  (NaN stays NaN, -0 stays -0: PyTorch's results).
 * Measured errors are in vmath.h. */

#include <stdint.h>
#include <string.h>

#ifndef VM_NAME
#error "define VM_NAME(name) before including vmath_impl.h"
#endif

#define VM_STATIC static inline __attribute__((always_inline))

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

VM_STATIC float VM_NAME(exp_f32)(float x) {
    const float shift = 0x1.8p23f, log2e = 0x1.715476p0f;
    const float ln2_hi = 0x1.62e4p-1f, ln2_lo = 0x1.7f7d1cp-20f; /* hi: 15 bits */
    /* clamp (a NaN is replaced by 0 here and put back at the end) */
    float xc = x > 88.8f ? 88.8f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    xc = x != x ? 0.0f : xc;
    float t = xc * log2e + shift;
    float nf = t - shift;                                                 /* round(x/ln2) */
    int32_t n = (int32_t)(VM_NAME(bits32)(t) - VM_NAME(bits32)(shift)); /* the same, as int */
    float r = (xc - nf * ln2_hi) - nf * ln2_lo;
    float q = 0x1.6d113cp-10f;
    q = q * r + 0x1.120ba2p-7f;
    q = q * r + 0x1.55551ap-5f;
    q = q * r + 0x1.5554dcp-3f;
    q = q * r + 0x1p-1f;
    float p = 1.0f + (r + (r * r) * q);
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
    R = R * z + 0x1.997c12p-2f;
    R = R * z + 0x1.55555cp-1f;
    R = R * z;
    float hfsq = 0.5f * f * f;
    float kf = (float)k;
    float y = (kf * ln2_hi + (f - (hfsq - (s * (hfsq + R) + kf * ln2_lo))));
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
    P = P * a2 - 0x1.03f99ap-7f;
    P = P * a2 + 0x1.622538p-6f;
    P = P * a2 - 0x1.b9d7aep-5f;
    P = P * a2 + 0x1.111042p-3f;
    P = P * a2 - 0x1.555554p-2f;
    float small = a + (a * a2) * P;
    float e = VM_NAME(exp_f32)(a + a);
    float big = 1.0f - 2.0f / (e + 1.0f);
    float t = a < 0.75f ? small : big;
    return VM_NAME(float32)(VM_NAME(bits32)(t) | sign);
}

/* The float32 exp's steps (see exp_f32), then num / (1 + e) corrected for e_lo. */
VM_STATIC float VM_NAME(sigmoid_f32)(float x) {
    const float shift = 0x1.8p23f, log2e = 0x1.715476p0f;
    const float ln2_hi = 0x1.62e4p-1f, ln2_lo = 0x1.7f7d1cp-20f;
    float na = VM_NAME(float32)(VM_NAME(bits32)(x) | 0x80000000u); /* -|x| */
    na = na < -104.0f ? -104.0f : na;
    na = x != x ? 0.0f : na;
    float t = na * log2e + shift;
    float nf = t - shift;
    int32_t n = (int32_t)(VM_NAME(bits32)(t) - VM_NAME(bits32)(shift)); /* in [-150, 0] */
    float r = (na - nf * ln2_hi) - nf * ln2_lo;
    float q = 0x1.6d113cp-10f;
    q = q * r + 0x1.120ba2p-7f;
    q = q * r + 0x1.55551ap-5f;
    q = q * r + 0x1.5554dcp-3f;
    q = q * r + 0x1p-1f;
    float w = r + (r * r) * q;
    float p_hi = 1.0f + w;
    float p_lo = w - (p_hi - 1.0f); /* p_hi + p_lo = 1 + w exactly (Fast2Sum) */
    int32_t n1 = (int32_t)((uint32_t)(n + 256) >> 1) - 128, n2 = n - n1;
    float s1 = VM_NAME(float32)((uint32_t)(n1 + 127) << 23);
    float s2 = VM_NAME(float32)((uint32_t)(n2 + 127) << 23);
    float e_hi = (p_hi * s1) * s2, e_lo = (p_lo * s1) * s2; /* e = exp(-|x|) ~ e_hi + e_lo */
    float d = 1.0f + e_hi;
    float d_lo = ((1.0f - d) + e_hi) + e_lo; /* 1 + e ~ d + d_lo */
    float num = x < 0.0f ? e_hi : 1.0f, num_lo = x < 0.0f ? e_lo : 0.0f;
    float y0 = num / d;
    float inv = x < 0.0f ? 1.0f - y0 : y0; /* ~ 1 / d, enough for the correction */
    float y = y0 + (num_lo - y0 * d_lo) * inv;
    return x != x ? x : y;
}

VM_STATIC float VM_NAME(relu_f32)(float x) { return x < 0.0f ? 0.0f : x; }

/* ------------------------------------------------------------------ float64 */

VM_STATIC double VM_NAME(exp_f64)(double x) {
    const double shift = 0x1.8p52, log2e = 0x1.71547652b82fep0;
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33; /* hi: 32 bits */
    double xc = x > 709.8 ? 709.8 : x;
    xc = xc < -746.0 ? -746.0 : xc;
    xc = x != x ? 0.0 : xc;
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

/* ------------------------------------------------------------------ array kernels
 * y[i] = f(x[i]); gx[i] += g[i] * f'(...), the derivative from the input x (log, relu) or
 * the output y (exp, sigmoid, tanh), written as PyTorch's backward formulas. Arrays must
 * not overlap (restrict), except that the tests never need that either. */

#define VM_ARRAY(FN, T, SFX)                                                              \
    static void VM_NAME(FN##_##SFX##_array)(const T *restrict x, T *restrict y, int64_t n) {     \
        for (int64_t i = 0; i < n; i++) y[i] = VM_NAME(FN##_##SFX)(x[i]);                 \
    }

#define VM_GRAD(FN, T, SFX, EXPR)                                                         \
    static void VM_NAME(FN##_grad_##SFX##_array)(const T *restrict a, const T *restrict g,\
                                                 T *restrict gx, int64_t n) {             \
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
                                                VM_ROW(grad_f64)};
#undef VM_ROW
