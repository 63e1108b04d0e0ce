/* kernels/vmath_avx512.c — the elementwise math of vmath_impl.h, vectorized for AVX-512F.
 *
 * AVX-512F has FMA instructions: contraction of a*b+c into one is turned off (GCC:
 * -ffp-contract=off is already the default of -std=c11, and the pragma below keeps it so
 * under -std=gnu11; clang: the STDC pragma), so the bits are those of the generic level.
 * The only fused multiply-adds are the explicit ones (VM_HAVE_FMA; see vmath_impl.h): the
 * float32 functions' VM_FMA32, fused at every level of an FMA CPU (the generic one there
 * is vmath_generic_fma.c), and the float32 powers' VM_MADD64, which do not change those
 * bits. vmath.c calls in here only after __builtin_cpu_supports("avx512f") and ("fma"). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,fma"))), apply_to = function)
#pragma STDC FP_CONTRACT OFF
#else
#pragma GCC target("avx512f,fma")
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#endif

#include "vmath.h"

#define VM_NAME(name) name##_avx512
#define VM_HAVE_FMA 1
/* the general float32 powers of this level are the kernels below, not vmath_impl.h's */
#define VM_POW_F32 pow16_scalar_avx512
#define VM_POW2_F32 pow16_tensor_avx512
#define VM_RPOW_F32 pow16_rpow_avx512
static int64_t pow16_scalar_avx512(const float *restrict x, double s, float *restrict y,
                                   int64_t n);
static int64_t pow16_tensor_avx512(const float *restrict a, const float *restrict b,
                                   float *restrict y, int64_t n);
static int64_t pow16_rpow_avx512(double base, const float *restrict x, float *restrict y,
                                 int64_t n);
#include "vmath_impl.h"

#include <immintrin.h>

/* ------------------------------------------------------------------ float32 powers
 * The general float32 powers (x ** s, a ** b, base ** x) at this level: the method of
 * vmath_impl.h's pow_log_f64 / pow_exp_f64 / pow_checked (e^(b log a) in double, a lane
 * kept only where its rounding to float32 is certain, every other lane NaN for the caller's
 * libm pow), with 16-entry tables instead of 128-entry ones, so that a lookup is one
 * two-register permute (vpermt2pd) rather than eight scalar loads (the compiler does not
 * vectorize a table lookup but as scalar loads and inserts; hardware gathers were slower
 * still). The smaller tables leave larger reduced arguments, taken by longer polynomials.
 * The lanes kept are libm's pow rounded to float32 (so the bits are those of every other
 * level); only how many lanes fall back to libm differs (about 2^-10 of them at each).
 *
 *   log a, a > 0 finite: a = 2^k z, z in [0.734375, 1.46875) (the offset OFF below, so that
 *     1 lies inside interval 8), 16 intervals by the 4 mantissa bits under the offset (width
 *     1/32 below 1, 1/16 above); c = POW16_INVC[i] ~ 1 / the interval's centre with 28
 *     significant bits (1 for interval 8, [0.984375, 1.03125)), so r = z c - 1 is exact
 *     (z has at most 24 significant bits) and |r| <= 2^-5 (tests/test_pow.py checks each
 *     interval); log a = (k ln2_hi + POW16_LOGC[i]) + (k ln2_lo + log1p(r)), POW16_LOGC[i]
 *     = -log c rounded; log1p(r) = r + r^2 Q(r), Q the Taylor series to r^9: truncation
 *     under |r|^9 / 10 * 1.05 <= 2^-48.2 relatively. The roundings add under 2^-51 each
 *     and the two parts cancel at most ~3x (interval 7 and 9 with k = 0; ~2x elsewhere):
 *     |error| <= 2^-47.4 |log a|.
 *   e^p, |p| <= 110: n = round(p 16 / ln2), r = p - n ln2 / 16 (ln2 / 16 in two parts, the
 *     high one with 37 bits, so n l_hi is exact), |r| <= ln2 / 32 + 2^-50;
 *     e^p = 2^floor(n / 16) POW16_EXP2[n mod 16] (1 + r + r^2 R(r)), R the Taylor series
 *     to r^6: truncation r^7 / 7! <= 2^-51 relatively; the table entry, the two roundings
 *     of r, the sum and the product add under 2^-51 more: within 2^-50 of e^p.
 * So y = e^(b log a) in double is within 2^-40.6 (110 * 2^-47.4 + 2^-53 for b log a, then
 * 2^-50) of the exact power relatively: under 2^12.4 units of its last bit, 2^5.6 times
 * inside the guard VM_POW_GUARD = 2^18 that pow_checked applies; the same checks follow
 * (a > 0 finite, p in [-110, 100], y >= 2^-126, the 29 bits below float32's 24 not within
 * the guard of the halfway pattern; p > 100 gives inf). Every step is a vector operation
 * on 8 doubles; a tail is masked (its inactive lanes neither read nor written nor
 * counted). */

static const double POW16_INVC[16] = {
    0x1.5555556000000p+0, 0x1.47ae148000000p+0, 0x1.3b13b14000000p+0,
    0x1.2f684be000000p+0, 0x1.2492492000000p+0, 0x1.1a7b962000000p+0,
    0x1.1111112000000p+0, 0x1.0842108000000p+0, 0x1.0000000000000p+0,
    0x1.e1e1e1e000000p-1, 0x1.c71c71c000000p-1, 0x1.af286bc000000p-1,
    0x1.999999a000000p-1, 0x1.8618618000000p-1, 0x1.745d174000000p-1,
    0x1.642c85a000000p-1,
};

static const double POW16_LOGC[16] = {
    -0x1.269621334db92p-2, -0x1.f991c6eb3b379p-3, -0x1.a93ed3e8ad9e3p-3,
    -0x1.5bf406dd43db2p-3, -0x1.1178e8027e47cp-3, -0x1.9335e6a594988p-4,
    -0x1.08598c39e3a06p-4, -0x1.0415d81e74444p-5, 0x0.0p+0,
    0x1.f0a30c21162a6p-5, 0x1.e2707722af2e6p-4, 0x1.5ff3073a793d4p-3,
    0x1.c8ff7c59a9a22p-3, 0x1.1675cacaba60ep-2, 0x1.4618bc31c5ec2p-2,
    0x1.739d7f3fbd007p-2,
};

static const double POW16_EXP2[16] = {
    0x1.0000000000000p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0,
    0x1.2387a6e756238p+0, 0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0,
    0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0, 0x1.6a09e667f3bcdp+0,
    0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0, 0x1.9c49182a3f090p+0,
    0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0, 0x1.d5818dcfba487p+0,
    0x1.ea4afa2a490dap+0,
};

#define P16_INLINE static inline __attribute__((always_inline))
#define P16_C64(x) _mm512_set1_epi64((long long)(x))

/* the two halves of a 16-entry table, for _mm512_permutex2var_pd (it reads an index's
 * low 4 bits: bit 3 picks the half) */
typedef struct {
    __m512d lo, hi;
} p16_table;

typedef struct {
    p16_table invc, logc, exp2;
} p16_tables;

P16_INLINE p16_tables p16_load(void) {
    p16_tables t = {{_mm512_loadu_pd(POW16_INVC), _mm512_loadu_pd(POW16_INVC + 8)},
                    {_mm512_loadu_pd(POW16_LOGC), _mm512_loadu_pd(POW16_LOGC + 8)},
                    {_mm512_loadu_pd(POW16_EXP2), _mm512_loadu_pd(POW16_EXP2 + 8)}};
    return t;
}

P16_INLINE __m512d p16_lookup(p16_table t, __m512i idx) {
    return _mm512_permutex2var_pd(t.lo, idx, t.hi);
}

/* float32 lanes 8H .. 8H + 7 of v, H a literal 0 or 1 (AVX-512F: through the double
 * halves; an immediate operand, so a macro, not a function of h) */
#define P16_HALF(v, H) _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), H))

/* 1 where a > 0 is finite */
P16_INLINE __mmask8 p16_pos_finite(__m512d a) {
    return _mm512_cmplt_epu64_mask(_mm512_sub_epi64(_mm512_castpd_si512(a), P16_C64(1)),
                                   P16_C64(0x7fefffffffffffffu));
}

/* log a (above) for a > 0 finite; any other lane some value, without trapping */
P16_INLINE __m512d p16_log(const p16_tables *t, __m512d a) {
    const __m512i u = _mm512_castpd_si512(a);
    const __m512i d = _mm512_sub_epi64(u, P16_C64(0x3fe7800000000000u)); /* OFF: 0.734375 */
    /* the biased k + 1024 = floor(d / 2^52) + 1024, from d + 2^62 (unsigned, in (0, 2^64)) */
    const __m512i kb =
        _mm512_srli_epi64(_mm512_add_epi64(d, P16_C64(0x4000000000000000u)), 52);
    const __m512i idx = _mm512_srli_epi64(d, 48); /* its low 4 bits: the interval */
    const __m512d z = _mm512_castsi512_pd(
        _mm512_sub_epi64(u, _mm512_slli_epi64(_mm512_sub_epi64(kb, P16_C64(1024)), 52)));
    /* k as a double: (2^52 + kb) - (2^52 + 1024), both exact */
    const __m512d kf = _mm512_sub_pd(
        _mm512_castsi512_pd(_mm512_or_si512(P16_C64(0x4330000000000000u), kb)),
        _mm512_set1_pd(0x1p52 + 1024.0));
    const __m512d r = _mm512_fmadd_pd(z, p16_lookup(t->invc, idx), _mm512_set1_pd(-1.0));
    __m512d q = _mm512_set1_pd(1.0 / 9);
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(-1.0 / 8));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0 / 7));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(-1.0 / 6));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0 / 5));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(-1.0 / 4));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0 / 3));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(-1.0 / 2));
    const __m512d lp = _mm512_fmadd_pd(_mm512_mul_pd(r, r), q, r);
    const __m512d hi = _mm512_fmadd_pd(kf, _mm512_set1_pd(0x1.62e42fee00000p-1),
                                       p16_lookup(t->logc, idx)); /* k ln2_hi exact */
    const __m512d lo = _mm512_fmadd_pd(kf, _mm512_set1_pd(0x1.a39ef35793c76p-33), lp);
    return _mm512_add_pd(hi, lo);
}

/* e^p (above) where its float32 rounding is certain and ok0; +inf where p > 100 and ok0;
 * NaN in every other lane (*keep: the lanes not NaN) */
P16_INLINE __m512d p16_exp_checked(const p16_tables *t, __m512d p, __mmask8 ok0,
                                   __mmask8 *keep) {
    const __m512d shift = _mm512_set1_pd(0x1.8p52);
    const __m512d tt = _mm512_fmadd_pd(p, _mm512_set1_pd(0x1.71547652b82fep+4), shift);
    const __m512d nf = _mm512_sub_pd(tt, shift);
    const __m512i n = _mm512_sub_epi64(_mm512_castpd_si512(tt), _mm512_castpd_si512(shift));
    __m512d r = _mm512_fnmadd_pd(nf, _mm512_set1_pd(0x1.62e42fefa0000p-5), p);
    r = _mm512_fnmadd_pd(nf, _mm512_set1_pd(0x1.cf79abc9e3b3ap-44), r);
    __m512d q = _mm512_set1_pd(1.0 / 720);
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0 / 120));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0 / 24));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0 / 6));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0.5));
    const __m512d e =
        _mm512_add_pd(_mm512_set1_pd(1.0), _mm512_fmadd_pd(_mm512_mul_pd(r, r), q, r));
    const __m512d y0 = _mm512_mul_pd(p16_lookup(t->exp2, n), e);
    /* times 2^m, m = floor(n / 16) = (n + 2^20) / 2^4 - 2^16 (n > -2^20 where kept): y0 is
     * in [1, 2), so its exponent bits take m exactly */
    const __m512i m = _mm512_sub_epi64(
        _mm512_srli_epi64(_mm512_add_epi64(n, P16_C64(1 << 20)), 4), P16_C64(1 << 16));
    const __m512i yb = _mm512_add_epi64(_mm512_castpd_si512(y0), _mm512_slli_epi64(m, 52));
    const __m512d y = _mm512_castsi512_pd(yb);
    const __m512i low = _mm512_and_si512(yb, P16_C64(0x1fffffffu));
    const __mmask8 certain = _mm512_cmpge_epu64_mask(
        _mm512_sub_epi64(low, P16_C64(0x10000000u - VM_POW_GUARD)), P16_C64(2 * VM_POW_GUARD));
    const __mmask8 big = _mm512_cmp_pd_mask(p, _mm512_set1_pd(100.0), _CMP_GT_OQ) & ok0;
    const __mmask8 ok = ok0 & certain &
                        _mm512_cmp_pd_mask(p, _mm512_set1_pd(-110.0), _CMP_GE_OQ) &
                        _mm512_cmp_pd_mask(p, _mm512_set1_pd(100.0), _CMP_LE_OQ) &
                        _mm512_cmp_pd_mask(y, _mm512_set1_pd(0x1p-126), _CMP_GE_OQ);
    *keep = ok | big;
    const __m512d nan = _mm512_castsi512_pd(P16_C64(0x7ff8000000000000u));
    const __m512d inf = _mm512_castsi512_pd(P16_C64(0x7ff0000000000000u));
    return _mm512_mask_mov_pd(_mm512_mask_mov_pd(nan, big, inf), ok, y);
}

/* One half H (a literal 0 or 1) of a 16-lane step of P16_LOOP, into half[H] */
#define P16_STEP(H, P_OF, OK0)                                                             \
    do {                                                                                   \
        const int h = H;                                                                   \
        const __m512d v = _mm512_cvtps_pd(P16_HALF(xv, H));                                \
        __mmask8 keep;                                                                     \
        const __m512d r = p16_exp_checked(&t, (P_OF), (OK0), &keep);                       \
        half[H] = _mm256_castps_pd(_mm512_cvtpd_ps(r));                                    \
        bad += __builtin_popcount((unsigned)(~keep & (act >> (8 * h)) & 0xffu));           \
    } while (0)

/* The loop of the three powers: 16 float32 lanes at a time (two vectors of 8 doubles),
 * masked at the tail. LOAD_B loads the second operand's lanes (for a ** b; `act`, `i` in
 * scope), P_OF is the exponent vector p of the base vector v (doubles of half h), OK0 the
 * lanes whose input qualifies. */
#define P16_LOOP(LOAD_B, P_OF, OK0)                                                        \
    do {                                                                                   \
        const p16_tables t = p16_load();                                                   \
        int64_t bad = 0;                                                                   \
        for (int64_t i = 0; i < n; i += 16) {                                              \
            const __mmask16 act =                                                          \
                n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);       \
            const __m512 xv = _mm512_maskz_loadu_ps(act, x + i);                           \
            LOAD_B;                                                                        \
            __m256d half[2];                                                               \
            P16_STEP(0, P_OF, OK0);                                                        \
            P16_STEP(1, P_OF, OK0);                                                        \
            const __m512 out = _mm512_castpd_ps(                                           \
                _mm512_insertf64x4(_mm512_castpd256_pd512(half[0]), half[1], 1));          \
            _mm512_mask_storeu_ps(y + i, act, out);                                        \
        }                                                                                  \
        return bad;                                                                        \
    } while (0)

static int64_t pow16_scalar_avx512(const float *restrict x, double s, float *restrict y,
                                   int64_t n) {
    const __m512d sv = _mm512_set1_pd(s);
    P16_LOOP((void)0, _mm512_mul_pd(sv, p16_log(&t, v)), p16_pos_finite(v));
}

static int64_t pow16_tensor_avx512(const float *restrict a, const float *restrict b,
                                   float *restrict y, int64_t n) {
    const float *x = a;
    P16_LOOP(const __m512 bv = _mm512_maskz_loadu_ps(act, b + i),
             _mm512_mul_pd(_mm512_cvtps_pd(h ? P16_HALF(bv, 1) : P16_HALF(bv, 0)),
                           p16_log(&t, v)),
             p16_pos_finite(v));
}

static int64_t pow16_rpow_avx512(double base, const float *restrict x, float *restrict y,
                                 int64_t n) {
    const p16_tables t0 = p16_load();
    const __m512d bv = _mm512_set1_pd(base);
    const __m512d lb = p16_log(&t0, bv); /* base is a float32 value */
    const __mmask8 ok0 = p16_pos_finite(bv);
    P16_LOOP((void)0, _mm512_mul_pd(v, lb), ok0);
}

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else
typedef int tg_vmath_avx512_unused; /* ISO C forbids an empty translation unit */
#endif
