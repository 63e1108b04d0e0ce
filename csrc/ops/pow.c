/* ops/pow.c — powers: tensor ** number ("pow"), number ** tensor ("rpow_scalar"), tensor **
 * tensor ("pow_tensor", with numpy broadcasting) and int64 ** a non-negative integer
 * ("int_pow"). Each forward sits beside its backward.
 *
 * float32 semantics: a general power is (float)pow((double)a, (double)b), the C library's
 * pow in double rounded once to float32 (the exponent of x ** s is the Python number,
 * never rounded to float32; the base of s ** x is rounded to float32 first, as PyTorch's
 * scalar base). It is computed as exp(b log a) in double (x ** s with s a multiple of 1/2
 * up to 8 in magnitude: as products and a square root in double) by the vectorized
 * kernels of kernels/vmath.h, in the lanes where that is certain to round to the same
 * float32 as libm's pow (a > 0 finite, a normal or overflowing result, not within 2^18 double ulps of
 * a float32 rounding boundary: vmath_impl.h has the error bound); the other lanes (zero,
 * negative, inf and NaN bases, subnormal results, the rare near-halfway results) call libm
 * pow. So the bits are those of libm's pow rounded to float32 at every SIMD level and every
 * thread count: within 0.5 ulp (plus libm's pow error, under 1 double ulp) of the exact
 * power. float64 tensors use libm's pow element by element. */
#include "../internal.h"
#include "../kernels/vmath.h"
#include "broadcast.h"

#include <tgmath.h>

/* Elements per block: the kernels' NaN lanes are fixed up block by block, while the block
 * is in cache; the backward kernels keep one block of factors on the stack. */
#define POW_BLOCK 512

/* ------------------------------------------------------------------ float32 general power */

/* The kernels leave NaN in the `bad` lanes of y[i0 .. i0 + m) they cannot round for sure
 * (and only there): each is set to EXPR (of j, its index), found 16 elements at a time
 * with a vectorizable test, until all `bad` are done. */
#define FIX_LANES(y, i0, m, bad, EXPR)                                                     \
    do {                                                                                   \
        int64_t left_ = (bad);                                                             \
        for (int64_t c_ = (i0); left_ > 0 && c_ < (i0) + (m); c_ += 16) {                  \
            const int64_t e_ = c_ + 16 < (i0) + (m) ? c_ + 16 : (i0) + (m);                \
            int any_ = 0;                                                                  \
            for (int64_t j = c_; j < e_; j++) any_ |= (y)[j] != (y)[j];                    \
            if (!any_) continue;                                                           \
            for (int64_t j = c_; j < e_; j++)                                              \
                if ((y)[j] != (y)[j]) {                                                    \
                    (y)[j] = (EXPR);                                                       \
                    left_--;                                                               \
                }                                                                          \
        }                                                                                  \
    } while (0)

/* y = (float)pow((double)x[i], s) over n elements (no special exponents); a multiple of
 * 1/2 up to 8 in magnitude (x ** 1.5, x ** -2.5, x ** 4) by products and a square root
 * (vmath_impl.h's pow_f32_halves_array: the same bits, several times faster) */
static void pow_f32_by(const tg_vmath_table *k, const float *x, double s, float *y, int64_t n) {
    const double q = 2.0 * s;
    const tg_vm_pow_f32_fn fn =
        q >= -16.0 && q <= 16.0 && q == (double)(int)q ? k->pow_halves_f32 : k->pow_f32;
    for (int64_t i0 = 0; i0 < n; i0 += POW_BLOCK) {
        const int64_t m = n - i0 < POW_BLOCK ? n - i0 : POW_BLOCK;
        int64_t bad = fn(x + i0, s, y + i0, m);
        FIX_LANES(y, i0, m, bad, (float)pow((double)x[j], s));
    }
}

/* y = (float)pow((double)a[i], (double)b[i]) over n elements */
static void pow2_f32(const tg_vmath_table *k, const float *a, const float *b, float *y,
                     int64_t n) {
    for (int64_t i0 = 0; i0 < n; i0 += POW_BLOCK) {
        const int64_t m = n - i0 < POW_BLOCK ? n - i0 : POW_BLOCK;
        int64_t bad = k->pow2_f32(a + i0, b + i0, y + i0, m);
        FIX_LANES(y, i0, m, bad, (float)pow((double)a[j], (double)b[j]));
    }
}

/* y = (float)pow((double)base, (double)x[i]) over n elements */
static void rpow_f32(const tg_vmath_table *k, float base, const float *x, float *y, int64_t n) {
    for (int64_t i0 = 0; i0 < n; i0 += POW_BLOCK) {
        const int64_t m = n - i0 < POW_BLOCK ? n - i0 : POW_BLOCK;
        int64_t bad = k->rpow_f32((double)base, x + i0, y + i0, m);
        FIX_LANES(y, i0, m, bad, (float)pow((double)base, (double)x[j]));
    }
}

/* ------------------------------------------------------------------ tensor ** number */

/* v ** s as PyTorch computes it: 1 for exponent 0 (even for NaN), v for 1, sqrt for 0.5
 * (so (-inf) ** 0.5 is NaN, not C's +inf), 1 / sqrt for -0.5, 1 / v for -1, v * v for 2,
 * v * v * v for 3, 1 / (v * v) for -2, each in T; any other exponent by pow in double,
 * rounded once to T (the exponent is never rounded to float: float32 NaN ** -1e-300 is
 * NaN, not NaN ** -0 = 1). */
enum { POW_GENERAL, POW_ZERO, POW_ONE, POW_HALF, POW_MHALF, POW_MONE, POW_TWO, POW_THREE,
       POW_MTWO };

static int pow_kind(double s) {
    return s == 0      ? POW_ZERO
           : s == 1    ? POW_ONE
           : s == 0.5  ? POW_HALF
           : s == -0.5 ? POW_MHALF
           : s == -1   ? POW_MONE
           : s == 2    ? POW_TWO
           : s == 3    ? POW_THREE
           : s == -2   ? POW_MTWO
                       : POW_GENERAL;
}

/* y[i] = x[i] ** s for a special exponent (kind != POW_GENERAL), in T; each a plain loop */
#define POW_SPECIAL(T, kind, x, y, n)                                                      \
    do {                                                                                   \
        switch (kind) {                                                                    \
        case POW_ZERO:                                                                     \
            for (int64_t i_ = 0; i_ < (n); i_++) (y)[i_] = (T)1;                           \
            break;                                                                         \
        case POW_ONE:                                                                      \
            for (int64_t i_ = 0; i_ < (n); i_++) (y)[i_] = (x)[i_];                        \
            break;                                                                         \
        case POW_HALF:                                                                     \
            for (int64_t i_ = 0; i_ < (n); i_++) (y)[i_] = sqrt((x)[i_]);                  \
            break;                                                                         \
        case POW_MHALF:                                                                    \
            for (int64_t i_ = 0; i_ < (n); i_++) (y)[i_] = (T)1 / sqrt((x)[i_]);           \
            break;                                                                         \
        case POW_MONE:                                                                     \
            for (int64_t i_ = 0; i_ < (n); i_++) (y)[i_] = (T)1 / (x)[i_];                 \
            break;                                                                         \
        case POW_TWO:                                                                      \
            for (int64_t i_ = 0; i_ < (n); i_++) (y)[i_] = (x)[i_] * (x)[i_];              \
            break;                                                                         \
        case POW_THREE:                                                                    \
            for (int64_t i_ = 0; i_ < (n); i_++) (y)[i_] = (x)[i_] * (x)[i_] * (x)[i_];    \
            break;                                                                         \
        default: /* POW_MTWO */                                                            \
            for (int64_t i_ = 0; i_ < (n); i_++) (y)[i_] = (T)1 / ((x)[i_] * (x)[i_]);     \
            break;                                                                         \
        }                                                                                  \
    } while (0)

/* y[i] = x[i] ** s with PyTorch's special exponents (above) */
static void pow_fill_f32(const tg_vmath_table *k, const float *x, double s, float *y,
                         int64_t n) {
    int kind = pow_kind(s);
    if (kind == POW_GENERAL) pow_f32_by(k, x, s, y, n);
    else POW_SPECIAL(float, kind, x, y, n);
}

static void pow_fill_f64(const double *x, double s, double *y, int64_t n) {
    int kind = pow_kind(s);
    if (kind != POW_GENERAL) {
        POW_SPECIAL(double, kind, x, y, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i] = pow(x[i], s);
}

static tg_status pow_unary_check(tg_op_args *a) {
    tg_status st = tg_check_float_meta(tg_op_rows[a->op]->name, &a->in[0]);
    if (st) return st;
    a->out = a->in[0];
    return TG_OK;
}

/* Elements [i0, i1) of an elementwise kernel; large arrays are cut into chunks for the
 * threads (tg_parallel_for). Every element's result is computed the same way wherever a
 * chunk starts (the power kernels are position-independent): the same bits for any
 * thread count. */
typedef void (*pow_range_fn)(const tg_op_args *a, const void *bufs, int64_t i0, int64_t i1);
typedef struct {
    pow_range_fn fn;
    const tg_op_args *a;
    const void *bufs;
} pow_range_ctx;

static void pow_range_part(void *ctx, int64_t i0, int64_t i1) {
    const pow_range_ctx *c = ctx;
    c->fn(c->a, c->bufs, i0, i1);
}

static void pow_run(pow_range_fn fn, const tg_op_args *a, const void *bufs, int64_t n) {
    pow_range_ctx c = {fn, a, bufs};
    tg_parallel_for(n, TG_PARALLEL_CHUNK, tg_parallel_threads(n), pow_range_part, &c);
}

static void pow_scalar_forward_range(const tg_op_args *a, const void *bufs, int64_t i0,
                                     int64_t i1) {
    const tg_fwd_bufs *b = bufs;
    if (a->out.dtype == TG_FLOAT32)
        pow_fill_f32(tg_vmath_kernels(), (const float *)b->in[0] + i0, a->scalar,
                     (float *)b->out + i0, i1 - i0);
    else
        pow_fill_f64((const double *)b->in[0] + i0, a->scalar, (double *)b->out + i0, i1 - i0);
}

static void pow_scalar_forward(const tg_op_args *a, const tg_fwd_bufs *b) {
    pow_run(pow_scalar_forward_range, a, b, a->out.numel);
}

/* PyTorch: exponent 0 gives a zero gradient, even at x = 0 (and NaN); otherwise
 * g * ((T)s * x ** (s - 1)), with s - 1 in double and x ** (s - 1) as the forward computes
 * it (special exponents included), a block at a time. */
#define POW_SCALAR_BACKWARD(T, FILL)                                                       \
    do {                                                                                   \
        const T *x = (const T *)b->in[0] + r0, *gout = (const T *)b->gout + r0;            \
        T *gx = (T *)b->gin[0] + r0;                                                       \
        const T s = (T)scalar;                                                             \
        if (scalar == 0) {                                                                 \
            for (int64_t i = 0; i < n; i++) gx[i] = assign ? (T)0 : gx[i] + (T)0;          \
            break;                                                                         \
        }                                                                                  \
        T p[POW_BLOCK];                                                                    \
        for (int64_t i0 = 0; i0 < n; i0 += POW_BLOCK) {                                    \
            const int64_t m = n - i0 < POW_BLOCK ? n - i0 : POW_BLOCK;                     \
            FILL;                                                                          \
            if (assign)                                                                    \
                for (int64_t j = 0; j < m; j++) gx[i0 + j] = gout[i0 + j] * (s * p[j]);    \
            else                                                                           \
                for (int64_t j = 0; j < m; j++) gx[i0 + j] += gout[i0 + j] * (s * p[j]);   \
        }                                                                                  \
    } while (0)

static void pow_scalar_backward_range(const tg_op_args *a, const void *bufs, int64_t r0,
                                      int64_t r1) {
    const tg_bwd_bufs *b = bufs;
    const double scalar = a->scalar;
    const int64_t n = r1 - r0;
    const int assign = (b->assign & 1u) != 0; /* a fresh slot: written, not added into */
    if (a->out.dtype == TG_FLOAT32) {
        const tg_vmath_table *k = tg_vmath_kernels();
        POW_SCALAR_BACKWARD(float, pow_fill_f32(k, x + i0, scalar - 1, p, m));
    } else {
        POW_SCALAR_BACKWARD(double, pow_fill_f64(x + i0, scalar - 1, p, m));
    }
}

static void pow_scalar_backward(const tg_op_args *a, const tg_bwd_bufs *b) {
    pow_run(pow_scalar_backward_range, a, b, a->out.numel);
}

const tg_op_info tg_row_pow_scalar = {.name = "pow",
                                      .saves = TG_SAVES_IN0,
                                      .flags = TG_ROW_ASSIGN,
                                      .check = pow_unary_check,
                                      .forward = pow_scalar_forward,
                                      .backward_kernel = pow_scalar_backward};

/* ------------------------------------------------------------------ number ** tensor */

/* s ** x with s rounded to T first; float32 as (float)pow((double)s, (double)x) */
static void rpow_scalar_forward_range(const tg_op_args *a, const void *bufs, int64_t i0,
                                      int64_t i1) {
    const tg_fwd_bufs *b = bufs;
    if (a->out.dtype == TG_FLOAT32) {
        rpow_f32(tg_vmath_kernels(), (float)a->scalar, (const float *)b->in[0] + i0,
                 (float *)b->out + i0, i1 - i0);
    } else {
        const double *x = b->in[0], s = a->scalar;
        double *y = b->out;
        for (int64_t i = i0; i < i1; i++) y[i] = pow(s, x[i]);
    }
}

static void rpow_scalar_forward(const tg_op_args *a, const tg_fwd_bufs *b) {
    pow_run(rpow_scalar_forward_range, a, b, a->out.numel);
}

/* d(s**x)/dx = s**x log s (log s once, in T); 0 for s == 0 and x >= 0, as in PyTorch. s**x
 * is the forward's output, saved, as PyTorch's backward reads its result. */
static void rpow_scalar_backward_range(const tg_op_args *a, const void *bufs, int64_t i0,
                                       int64_t i1) {
    const tg_bwd_bufs *b = bufs;
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *x = b->in[0], *y = b->out, *gout = b->gout;
        T *gx = b->gin[0];
        const T s = (T)a->scalar, ls = log(s);
        if (b->assign & 1u) /* a fresh slot: written, not added into */
            for (int64_t i = i0; i < i1; i++)
                gx[i] = gout[i] * (s == 0 && x[i] >= 0 ? (T)0 : y[i] * ls);
        else
            for (int64_t i = i0; i < i1; i++)
                gx[i] += gout[i] * (s == 0 && x[i] >= 0 ? (T)0 : y[i] * ls);
    });
}

static void rpow_scalar_backward(const tg_op_args *a, const tg_bwd_bufs *b) {
    pow_run(rpow_scalar_backward_range, a, b, a->out.numel);
}

const tg_op_info tg_row_rpow_scalar = {.name = "rpow_scalar",
                                       .saves = TG_SAVES_IN0 | TG_SAVES_OUTPUT,
                                       .flags = TG_ROW_ASSIGN,
                                       .check = pow_unary_check,
                                       .forward = rpow_scalar_forward,
                                       .backward_kernel = rpow_scalar_backward};

/* ------------------------------------------------------------------ tensor ** tensor */

/* The float32 broadcast, one segment of the collapsed broadcast at a time (a same-shape
 * or one-element exponent is one segment: BROADCAST_SEGMENTS), in pieces of at most
 * POW_BLOCK: BODY sees io (the first output element), m, and ia / ib with sai / sbi (the
 * first input elements and their strides along the segment, 0 or 1), in row-major output
 * order. */
#define POW_ROWS(bc, ...)                                                                  \
    BROADCAST_SEGMENTS(bc, {                                                               \
        for (int64_t j0_ = 0; j0_ < n; j0_ += POW_BLOCK) {                                 \
            const int64_t m = n - j0_ < POW_BLOCK ? n - j0_ : POW_BLOCK;                   \
            const int64_t io = o0 + j0_, ia = a0 + j0_ * sai, ib = b0 + j0_ * sbi;         \
            __VA_ARGS__                                                                    \
        }                                                                                  \
    })

/* The m elements of a row piece of x from index i with stride st (0 or 1): x + i itself
 * when contiguous, else buf filled with x[i]. */
static const float *row_piece(const float *x, int64_t i, int64_t st, int64_t m, float *buf) {
    if (st) return x + i;
    for (int64_t j = 0; j < m; j++) buf[j] = x[i];
    return buf;
}

static void pow2_forward_range(const tg_op_args *a, const void *bufs, int64_t i0, int64_t i1) {
    const tg_fwd_bufs *b = bufs;
    (void)a;
    pow2_f32(tg_vmath_kernels(), (const float *)b->in[0] + i0, (const float *)b->in[1] + i0,
             (float *)b->out + i0, i1 - i0);
}

static void pow_tensor_forward(const tg_op_args *a, const tg_fwd_bufs *b) {
    const int64_t n = a->bc.numel;
    if (a->out.dtype == TG_FLOAT64) {
        const double *x = b->in[0], *y = b->in[1];
        double *z = b->out;
        BROADCAST_LOOP(a->bc, { z[io] = pow(x[ia], y[ib]); });
        return;
    }
    const tg_vmath_table *k = tg_vmath_kernels();
    const float *x = b->in[0], *y = b->in[1];
    float *z = b->out;
    if (a->in[0].numel == n && a->in[1].numel == n) {
        pow_run(pow2_forward_range, a, b, n);
    } else if (a->in[1].numel == 1 && a->in[0].numel == n) {
        pow_f32_by(k, x, (double)y[0], z, n); /* the same bits as pow2_f32 */
    } else {
        float ub[POW_BLOCK], vb[POW_BLOCK];
        POW_ROWS(a->bc, {
            pow2_f32(k, row_piece(x, ia, sai, m, ub), row_piece(y, ib, sbi, m, vb), z + io, m);
        });
    }
}

/* PyTorch's masks: a zero exponent gives a zero factor for d/da; a zero base with a
 * non-negative exponent gives a zero factor for d/db (not 0 * -inf):
 *   ga += g * (v == 0 ? 0 : v * u ** (v - 1)),  gb += g * (u == 0 && v >= 0 ? 0 : u ** v * log u)
 * (v - 1 in T). u ** v is the forward's output, saved (PyTorch's backward reads its result
 * too); float32: u ** (v - 1) as the forward computes powers, log u by the vmath kernel. ga and gb
 * are the same buffer for x ** x; every element still gets its d/da term before its d/db
 * term, and the accumulation into a broadcast input follows the output order. */
static void pow2_backward_f32(const tg_bwd_bufs *b, const tg_bcast rows);

/* Elements [i0, i1) of a same-shape float32 backward: the buffers from i0 on, as one row. */
static void pow2_backward_range(const tg_op_args *a, const void *bufs, int64_t i0, int64_t i1) {
    (void)a;
    tg_bwd_bufs sub = *(const tg_bwd_bufs *)bufs;
    sub.in[0] = (const float *)sub.in[0] + i0;
    sub.in[1] = (const float *)sub.in[1] + i0;
    sub.out = (const float *)sub.out + i0;
    sub.gout = (const float *)sub.gout + i0;
    if (sub.gin[0]) sub.gin[0] = (float *)sub.gin[0] + i0;
    if (sub.gin[1]) sub.gin[1] = (float *)sub.gin[1] + i0;
    tg_bcast flat = {.ndim = 1, .numel = i1 - i0};
    flat.shape[0] = i1 - i0;
    flat.sa[0] = flat.sb[0] = 1;
    pow2_backward_f32(&sub, flat);
}

static void pow_tensor_backward(const tg_op_args *a, const tg_bwd_bufs *b) {
    if (a->out.dtype == TG_FLOAT64) {
        const double *x = b->in[0], *y = b->in[1], *z = b->out, *gout = b->gout;
        double *ga = b->gin[0], *gb = b->gin[1];
        BROADCAST_LOOP(a->bc, {
            const double g = gout[io], u = x[ia], v = y[ib];
            if (ga) ga[ia] += g * (v == 0 ? 0.0 : v * pow(u, v - 1));
            if (gb) gb[ib] += g * (u == 0 && v >= 0 ? 0.0 : z[io] * log(u));
        });
        return;
    }
    const int64_t n = a->bc.numel;
    if (a->in[0].numel == n && a->in[1].numel == n) /* elementwise: split for the threads */
        pow_run(pow2_backward_range, a, b, n);
    else
        pow2_backward_f32(b, a->bc);
}

/* The float32 backward over the broadcast `rows` of the buffers b. */
static void pow2_backward_f32(const tg_bwd_bufs *b, const tg_bcast rows) {
    const tg_vmath_table *k = tg_vmath_kernels();
    const float *x = b->in[0], *y = b->in[1], *z = b->out, *gout = b->gout;
    float *ga = b->gin[0], *gb = b->gin[1];
    float ub[POW_BLOCK], vb[POW_BLOCK], e[POW_BLOCK], p[POW_BLOCK], l[POW_BLOCK];
    POW_ROWS(rows, {
        const float *u = row_piece(x, ia, sai, m, ub), *v = row_piece(y, ib, sbi, m, vb);
        const float *g = gout + io;
        if (ga) {
            for (int64_t j = 0; j < m; j++) e[j] = v[j] - 1.0f;
            pow2_f32(k, u, e, p, m);
            for (int64_t j = 0; j < m; j++)
                ga[ia + j * sai] += g[j] * (v[j] == 0 ? 0.0f : v[j] * p[j]);
        }
        if (gb) {
            const float *w = z + io; /* u ** v, the forward's output */
            k->f32[TG_VMATH_LOG](u, l, m);
            for (int64_t j = 0; j < m; j++)
                gb[ib + j * sbi] += g[j] * (u[j] == 0 && v[j] >= 0 ? 0.0f : w[j] * l[j]);
        }
    });
}

const tg_op_info tg_row_pow = {.name = "pow_tensor",
                               .saves = TG_SAVES_IN0 | TG_SAVES_IN1 | TG_SAVES_OUTPUT,
                               .check = tg_binary_check, /* floats: no int64 pow_tensor */
                               .forward = pow_tensor_forward,
                               .backward_kernel = pow_tensor_backward};

tg_tensor *tg_pow(tg_tensor *a, tg_tensor *b) {
    tg_op_args args = {.op = TG_OP_POW, .n_in = 2};
    tg_tensor *in[2] = {a, b};
    return tg_apply(&args, in);
}

/* ------------------------------------------------------------------ int64 ** integer */

/* int64 ** a non-negative integer, by squaring, wrapping on overflow as PyTorch does.
 * Integers never require grad: a row without a backward kernel ("int_pow"). */
static tg_status int_pow_check(tg_op_args *a) {
    const double s = a->scalar;
    if (!(s >= 0) || s != (double)(int64_t)s || s > 9.2e18)
        return tg_fail(TG_ERR_ARG, "pow: an int64 tensor can only be raised to a non-negative "
                                   "integer power (got %g); convert it with .float() first", s);
    a->out = a->in[0];
    return TG_OK;
}

static void int_pow_forward(const tg_op_args *a, const tg_fwd_bufs *b) {
    const int64_t *x = b->in[0];
    int64_t *y = b->out;
    const uint64_t e0 = (uint64_t)a->scalar;
    for (int64_t i = 0; i < a->out.numel; i++) {
        uint64_t base = (uint64_t)x[i], r = 1;
        for (uint64_t e = e0; e; e >>= 1) {
            if (e & 1) r *= base;
            base *= base;
        }
        y[i] = (int64_t)r;
    }
}

const tg_op_info tg_row_int_pow = {.name = "int_pow",
                                   .saves = 0,
                                   .check = int_pow_check,
                                   .forward = int_pow_forward,
                                   .backward_kernel = NULL};

static tg_tensor *pow_unary(tg_op op, tg_tensor *a, double scalar) {
    tg_op_args args = {.op = op, .n_in = 1, .scalar = scalar};
    return tg_apply(&args, &a);
}

tg_tensor *tg_pow_scalar(tg_tensor *a, double s) {
    if (a && a->dtype == TG_INT64) return pow_unary(TG_OP_INT_POW, a, s);
    return pow_unary(TG_OP_POW_SCALAR, a, s);
}
tg_tensor *tg_rpow_scalar(tg_tensor *a, double s) { return pow_unary(TG_OP_RPOW_SCALAR, a, s); }
