/* ops/elementwise.c — binary ops with numpy broadcasting, ops with a scalar, and unary
 * ops. Each forward sits beside its backward. */
#include "../internal.h"
#include "../kernels/vmath.h"
#include "broadcast.h"

#include <string.h>
#include <tgmath.h>

/* ------------------------------------------------------------------ binary ops
 *
 * Same-dtype operands with numpy broadcasting. int64 add/sub/mul wrap on overflow as
 * PyTorch's do (computed unsigned: signed overflow is undefined in C); integers never
 * require grad, so they have no backward. */

static int integer_binary(tg_op op) { return op == TG_OP_ADD || op == TG_OP_SUB || op == TG_OP_MUL; }

tg_status tg_binary_check(tg_op_args *a) {
    const char *name = tg_op_rows[a->op]->name;
    if (!(a->present & 2u)) return tg_fail(TG_ERR_ARG, "%s: got a NULL tensor", name);
    const tg_meta *x = &a->in[0], *y = &a->in[1];
    int integer = x->dtype == TG_INT64 && y->dtype == TG_INT64 && integer_binary(a->op);
    if (!integer) {
        tg_status st = tg_check_float_meta(name, x);
        if (!st) st = tg_check_float_meta(name, y);
        if (!st) st = tg_check_same_dtype_meta(name, x, y);
        if (st) return st;
    }
    tg_status st = broadcast_metas(name, x, y, &a->bc);
    if (st) return st;
    tg_meta_set(&a->out, x->dtype, a->bc.ndim, a->bc.shape);
    return TG_OK;
}

/* z = EXPR(u, v) over the broadcast (BROADCAST_LOOP: a same-shape or one-element operand
 * is one flat segment) */
#define BINARY_LOOP(EXPR)                                                                  \
    BROADCAST_LOOP(a->bc, {                                                                \
        T u = x[ia], v = y[ib];                                                            \
        (void)u, (void)v;                                                                  \
        z[io] = (EXPR);                                                                    \
    })

#define BINARY_FORWARD(NAME, EXPR, INT_EXPR)                                               \
    static void NAME##_forward(const tg_op_args *a, const tg_fwd_bufs *b) {                \
        if (a->out.dtype == TG_INT64) {                                                    \
            typedef int64_t T;                                                             \
            typedef uint64_t U;                                                            \
            (void)sizeof(U);                                                               \
            const T *x = b->in[0], *y = b->in[1];                                          \
            T *z = b->out;                                                                 \
            BINARY_LOOP(INT_EXPR);                                                         \
            return;                                                                        \
        }                                                                                  \
        TG_FLOAT_SWITCH(a->out.dtype, {                                                    \
            const T *x = b->in[0], *y = b->in[1];                                          \
            T *z = b->out;                                                                 \
            BINARY_LOOP(EXPR);                                                             \
        });                                                                                \
    }

/* ga[ia] += GA and gb[ib] += GB for every output element io, with g = gout[io],
 * u = x[ia], v = y[ib]; the two gradients in two passes. Along a segment where the
 * written operand is not broadcast, one add per element; where it is (its stride is 0),
 * the segment's terms are summed into 16 lanes (term j into lane j % 16, in order), the
 * lanes added pairwise, and that sum added once. The order is fixed by the shapes alone:
 * the same bits on every machine and ISA. */
#define BINARY_TERMS_(T, J, EXPR)                                                          \
    const T g = gout[o0 + (J)], u = x[a0 + (J) * sai], v = y[b0 + (J) * sbi];              \
    (void)u, (void)v;                                                                      \
    const T t_ = (T)(EXPR)

#define BINARY_REDUCE_SEG_(T, DST, EXPR)                                                   \
    do {                                                                                   \
        T l_[16] = {0};                                                                    \
        int64_t j_ = 0;                                                                    \
        for (; j_ + 16 <= n; j_ += 16)                                                     \
            for (int k_ = 0; k_ < 16; k_++) {                                              \
                BINARY_TERMS_(T, j_ + k_, EXPR);                                           \
                l_[k_] += t_;                                                              \
            }                                                                              \
        for (int k_ = 0; j_ < n; j_++, k_++) {                                             \
            BINARY_TERMS_(T, j_, EXPR);                                                    \
            l_[k_] += t_;                                                                  \
        }                                                                                  \
        for (int w_ = 8; w_ >= 1; w_ /= 2)                                                 \
            for (int k_ = 0; k_ < w_; k_++) l_[k_] += l_[k_ + w_];                         \
        (DST) += l_[0];                                                                    \
    } while (0)

/* one add per element along a segment, with the operands' strides SA, SB spelled out */
#define BINARY_ADD_SEG_(T, DST, SA, SB, EXPR)                                              \
    for (int64_t j = 0; j < n; j++) {                                                      \
        const T g = gout[o0 + j], u = x[a0 + j * (SA)], v = y[b0 + j * (SB)];              \
        (void)u, (void)v;                                                                  \
        DST[j] += (EXPR);                                                                  \
    }

/* A fresh slot (bit BIT of b->assign): an operand that is not broadcast is written, one
 * element per output element; a broadcast one is zeroed, then summed into. */
#define BINARY_GRAD_PASS_(T, DST, DSTRIDE, DBASE, EXPR, BIT, NUMEL)                        \
    if ((b->assign & (BIT)) && (NUMEL) == a->bc.numel) {                                   \
        BINARY_ASSIGN_PASS_(T, DST, EXPR);                                                 \
    } else {                                                                               \
        if (b->assign & (BIT)) memset(DST, 0, (size_t)(NUMEL) * sizeof(T));                \
        BINARY_ADD_PASS_(T, DST, DSTRIDE, DBASE, EXPR);                                    \
    }

#define BINARY_ASSIGN_PASS_(T, DST, EXPR)                                                  \
    BROADCAST_SEGMENTS(a->bc, {                                                            \
        T *d_ = DST + o0;                                                                  \
        if (sai == 1 && sbi == 1) {                                                        \
            BINARY_SET_SEG_(T, d_, 1, 1, EXPR)                                             \
        } else if (sai == 1) {                                                             \
            BINARY_SET_SEG_(T, d_, 1, 0, EXPR)                                             \
        } else {                                                                           \
            BINARY_SET_SEG_(T, d_, 0, 1, EXPR)                                             \
        }                                                                                  \
    })

#define BINARY_SET_SEG_(T, DST, SA, SB, EXPR)                                              \
    for (int64_t j = 0; j < n; j++) {                                                      \
        const T g = gout[o0 + j], u = x[a0 + j * (SA)], v = y[b0 + j * (SB)];              \
        (void)u, (void)v;                                                                  \
        DST[j] = (EXPR);                                                                   \
    }

#define BINARY_ADD_PASS_(T, DST, DSTRIDE, DBASE, EXPR)                                     \
    BROADCAST_SEGMENTS(a->bc, {                                                            \
        T *d_ = DST + (DBASE);                                                             \
        if ((DSTRIDE) == 0) BINARY_REDUCE_SEG_(T, d_[0], EXPR);                            \
        else if (sai == 1 && sbi == 1) { BINARY_ADD_SEG_(T, d_, 1, 1, EXPR) }              \
        else if (sai == 1) { BINARY_ADD_SEG_(T, d_, 1, 0, EXPR) }                          \
        else { BINARY_ADD_SEG_(T, d_, 0, 1, EXPR) }                                        \
    })

#define BINARY_BACKWARD(NAME, GA, GB)                                                      \
    static void NAME##_backward(const tg_op_args *a, const tg_bwd_bufs *b) {               \
        TG_FLOAT_SWITCH(a->out.dtype, {                                                    \
            const T *x = b->in[0], *y = b->in[1], *gout = b->gout;                         \
            T *ga = b->gin[0], *gb = b->gin[1];                                            \
            (void)x;                                                                       \
            (void)y;                                                                       \
            if (ga) { BINARY_GRAD_PASS_(T, ga, sai, a0, GA, 1u, a->in[0].numel) }          \
            if (gb) { BINARY_GRAD_PASS_(T, gb, sbi, b0, GB, 2u, a->in[1].numel) }          \
        });                                                                                \
    }

#define BINARY_ROW(NAME, OPNAME, SAVES)                                                    \
    const tg_op_info tg_row_##NAME = {.name = OPNAME,                                      \
                                      .saves = SAVES,                                      \
                                      .flags = TG_ROW_ASSIGN,                              \
                                      .check = tg_binary_check,                            \
                                      .forward = NAME##_forward,                           \
                                      .backward_kernel = NAME##_backward}

BINARY_FORWARD(add, u + v, (T)((U)u + (U)v))
BINARY_BACKWARD(add, g, g)
BINARY_ROW(add, "add", 0);

BINARY_FORWARD(sub, u - v, (T)((U)u - (U)v))
BINARY_BACKWARD(sub, g, -g)
BINARY_ROW(sub, "sub", 0);

BINARY_FORWARD(mul, u * v, (T)((U)u * (U)v))
BINARY_BACKWARD(mul, g * v, g * u)
BINARY_ROW(mul, "mul", TG_SAVES_IN0 | TG_SAVES_IN1);

BINARY_FORWARD(div, u / v, 0)
BINARY_BACKWARD(div, g / v, -(g * (u / v) / v))
BINARY_ROW(div, "div", TG_SAVES_IN0 | TG_SAVES_IN1);

static tg_tensor *binary(tg_op op, tg_tensor *a, tg_tensor *b) {
    tg_op_args args = {.op = op, .n_in = 2};
    tg_tensor *in[2] = {a, b};
    return tg_apply(&args, in);
}

tg_tensor *tg_add(tg_tensor *a, tg_tensor *b) { return binary(TG_OP_ADD, a, b); }
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b) { return binary(TG_OP_SUB, a, b); }
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b) { return binary(TG_OP_MUL, a, b); }
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b) { return binary(TG_OP_DIV, a, b); }

/* ------------------------------------------------------------------ unary and scalar ops */

static tg_status unary_check(tg_op_args *a) {
    tg_status st = tg_check_float_meta(tg_op_rows[a->op]->name, &a->in[0]);
    if (st) return st;
    a->out = a->in[0];
    return TG_OK;
}

/* y[i] = EXPR(v = x[i], s = the scalar in T, scalar = the scalar in double) */
#define UNARY_FORWARD(NAME, EXPR)                                                          \
    static void NAME##_forward(const tg_op_args *a, const tg_fwd_bufs *b) {                \
        const double scalar = a->scalar;                                                   \
        (void)scalar;                                                                      \
        TG_FLOAT_SWITCH(a->out.dtype, {                                                    \
            const T *x = b->in[0];                                                         \
            T *y = b->out;                                                                 \
            const T s = (T)scalar;                                                         \
            (void)s;                                                                       \
            for (int64_t i = 0; i < a->out.numel; i++) {                                   \
                T v = x[i];                                                                \
                y[i] = (EXPR);                                                             \
            }                                                                              \
        });                                                                                \
    }

/* gx[i] += EXPR(g = gout[i], v = x[i], s, scalar); gx[i] = EXPR for a fresh slot (the
 * rows are TG_ROW_ASSIGN: their gradient has the input's shape, so every element of the
 * slot is written) */
#define UNARY_BACKWARD(NAME, EXPR)                                                         \
    static void NAME##_backward(const tg_op_args *a, const tg_bwd_bufs *b) {               \
        const double scalar = a->scalar;                                                   \
        (void)scalar;                                                                      \
        TG_FLOAT_SWITCH(a->out.dtype, {                                                    \
            const T *x = b->in[0], *gout = b->gout;                                        \
            T *gx = b->gin[0];                                                             \
            const T s = (T)scalar;                                                         \
            (void)s;                                                                       \
            if (b->assign & 1u) {                                                          \
                for (int64_t i = 0; i < a->out.numel; i++) {                               \
                    const T g = gout[i], v = x[i];                                         \
                    (void)v;                                                               \
                    gx[i] = (EXPR);                                                        \
                }                                                                          \
                break;                                                                     \
            }                                                                              \
            for (int64_t i = 0; i < a->out.numel; i++) {                                   \
                const T g = gout[i], v = x[i];                                             \
                (void)v;                                                                   \
                gx[i] += (EXPR);                                                           \
            }                                                                              \
        });                                                                                \
    }

#define UNARY_ROW(NAME, OPNAME, SAVES)                                                     \
    const tg_op_info tg_row_##NAME = {.name = OPNAME,                                      \
                                      .saves = SAVES,                                      \
                                      .flags = TG_ROW_ASSIGN,                              \
                                      .check = unary_check,                                \
                                      .forward = NAME##_forward,                           \
                                      .backward_kernel = NAME##_backward}

UNARY_FORWARD(add_scalar, v + s)
UNARY_BACKWARD(add_scalar, g)
UNARY_ROW(add_scalar, "add_scalar", 0);

UNARY_FORWARD(mul_scalar, v * s)
UNARY_BACKWARD(mul_scalar, g * s)
UNARY_ROW(mul_scalar, "mul_scalar", 0);

UNARY_FORWARD(rsub_scalar, s - v)
UNARY_BACKWARD(rsub_scalar, -g)
UNARY_ROW(rsub_scalar, "rsub_scalar", 0);

UNARY_FORWARD(div_scalar, v / s)
UNARY_BACKWARD(div_scalar, g / s)
UNARY_ROW(div_scalar, "div_scalar", 0);

UNARY_FORWARD(rdiv_scalar, s / v)
UNARY_BACKWARD(rdiv_scalar, -g * s / (v * v))
UNARY_ROW(rdiv_scalar, "rdiv_scalar", TG_SAVES_IN0);

UNARY_FORWARD(neg, -v)
UNARY_BACKWARD(neg, -g)
UNARY_ROW(neg, "neg", 0);

/* exp, log, sigmoid (stable for any |v|), tanh and relu (NaN and -0 pass, as in
 * PyTorch): the vectorized kernels of kernels/vmath.h, forward and backward with
 * PyTorch's formulas: exp g y, log g / x, sigmoid g (1 - y) y, tanh g (1 - y y), relu
 * (threshold_backward) x <= 0 ? 0 : g, so NaN's gradient passes through. The gradient
 * reads the output (exp, sigmoid, tanh) or the input (log, relu). */
/* A vmath kernel over [begin, end) of its arrays: the kernels are elementwise and give
 * the same bits for an element wherever an array starts (their SIMD body and scalar tail
 * compute alike), so large arrays are split over the threads. */
typedef struct {
    const tg_vmath_table *k;
    int fn, grad, assign; /* assign: the gradient slot is fresh (written, not added to) */
    tg_dtype dtype;
    const void *a, *g; /* the input or output; the output's gradient (grad) */
    void *y;           /* the output, or the input's gradient (grad) */
} vmath_ctx;

static void vmath_part(void *ctx, int64_t b0, int64_t b1) {
    const vmath_ctx *c = ctx;
    if (c->dtype == TG_FLOAT32) {
        const float *a = (const float *)c->a + b0;
        float *y = (float *)c->y + b0;
        if (c->grad) c->k->grad_f32[c->fn](a, (const float *)c->g + b0, y, b1 - b0, c->assign);
        else c->k->f32[c->fn](a, y, b1 - b0);
    } else {
        const double *a = (const double *)c->a + b0;
        double *y = (double *)c->y + b0;
        if (c->grad) c->k->grad_f64[c->fn](a, (const double *)c->g + b0, y, b1 - b0, c->assign);
        else c->k->f64[c->fn](a, y, b1 - b0);
    }
}

static void vmath_run(int fn, int grad, int assign, tg_dtype dtype, const void *a,
                      const void *g, void *y, int64_t n) {
    vmath_ctx c = {tg_vmath_kernels(), fn, grad, assign, dtype, a, g, y};
    tg_parallel_for(n, TG_PARALLEL_CHUNK, tg_parallel_threads(n), vmath_part, &c);
}

#define VMATH_ROW(NAME, OPNAME, FN, SAVES)                                                 \
    static void NAME##_forward(const tg_op_args *a, const tg_fwd_bufs *b) {                \
        vmath_run(FN, 0, 0, a->out.dtype, b->in[0], NULL, b->out, a->out.numel);           \
    }                                                                                      \
    static void NAME##_backward(const tg_op_args *a, const tg_bwd_bufs *b) {               \
        const void *arg = ((SAVES) & TG_SAVES_OUTPUT) ? b->out : b->in[0];                 \
        vmath_run(FN, 1, (b->assign & 1u) != 0, a->out.dtype, arg, b->gout, b->gin[0],     \
                  a->out.numel);                                                           \
    }                                                                                      \
    const tg_op_info tg_row_##NAME = {.name = OPNAME,                                      \
                                      .saves = SAVES,                                      \
                                      .flags = TG_ROW_ASSIGN,                              \
                                      .check = unary_check,                                \
                                      .forward = NAME##_forward,                           \
                                      .backward_kernel = NAME##_backward}

VMATH_ROW(exp, "exp", TG_VMATH_EXP, TG_SAVES_OUTPUT);
VMATH_ROW(log, "log", TG_VMATH_LOG, TG_SAVES_IN0);
VMATH_ROW(sigmoid, "sigmoid", TG_VMATH_SIGMOID, TG_SAVES_OUTPUT);
VMATH_ROW(tanh, "tanh", TG_VMATH_TANH, TG_SAVES_OUTPUT);
VMATH_ROW(relu, "relu", TG_VMATH_RELU, TG_SAVES_IN0);

static tg_tensor *unary(tg_op op, tg_tensor *a, double scalar) {
    tg_op_args args = {.op = op, .n_in = 1, .scalar = scalar};
    return tg_apply(&args, &a);
}

tg_tensor *tg_add_scalar(tg_tensor *a, double s) { return unary(TG_OP_ADD_SCALAR, a, s); }
tg_tensor *tg_mul_scalar(tg_tensor *a, double s) { return unary(TG_OP_MUL_SCALAR, a, s); }
tg_tensor *tg_rsub_scalar(tg_tensor *a, double s) { return unary(TG_OP_RSUB_SCALAR, a, s); }
tg_tensor *tg_div_scalar(tg_tensor *a, double s) { return unary(TG_OP_DIV_SCALAR, a, s); }
tg_tensor *tg_rdiv_scalar(tg_tensor *a, double s) { return unary(TG_OP_RDIV_SCALAR, a, s); }

tg_tensor *tg_neg(tg_tensor *a) { return unary(TG_OP_NEG, a, 0); }
tg_tensor *tg_exp(tg_tensor *a) { return unary(TG_OP_EXP, a, 0); }
tg_tensor *tg_log(tg_tensor *a) { return unary(TG_OP_LOG, a, 0); }
tg_tensor *tg_sigmoid(tg_tensor *a) { return unary(TG_OP_SIGMOID, a, 0); }
tg_tensor *tg_tanh(tg_tensor *a) { return unary(TG_OP_TANH, a, 0); }
tg_tensor *tg_relu(tg_tensor *a) { return unary(TG_OP_RELU, a, 0); }
