/* ops/elementwise.c — binary ops with numpy broadcasting, ops with a scalar, and unary
 * ops. Each forward sits beside its backward. */
#include "../internal.h"
#include "../kernels/vmath.h"
#include "broadcast.h"

#include <string.h>
#include <tgmath.h>

#define BINARY_CASE(OP_ID, EXPR)                                                           \
    case OP_ID:                                                                            \
        if (same) {                                                                        \
            for (int64_t i = 0; i < n; i++) {                                              \
                T u = x[i], v = y[i];                                                      \
                z[i] = (EXPR);                                                             \
            }                                                                              \
        } else if (b->numel == 1 && a->numel == n) {                                       \
            T v = y[0];                                                                    \
            for (int64_t i = 0; i < n; i++) {                                              \
                T u = x[i];                                                                \
                z[i] = (EXPR);                                                             \
            }                                                                              \
        } else {                                                                           \
            BROADCAST_LOOP(bc, {                                                           \
                T u = x[ia], v = y[ib];                                                    \
                z[io] = (EXPR);                                                            \
            });                                                                            \
        }                                                                                  \
        break;

static tg_tensor *binary_forward(tg_op op, tg_tensor *a, tg_tensor *b) {
    const char *name = tg_op_rows[op]->name;
    /* int64 add/sub/mul wrap on overflow as PyTorch's do (computed unsigned: signed
     * overflow is undefined in C). Integers never require grad, so nothing is recorded. */
    int integer = a && b && a->dtype == TG_INT64 && b->dtype == TG_INT64 &&
                  (op == TG_OP_ADD || op == TG_OP_SUB || op == TG_OP_MUL);
    if (!integer && (tg_check_float(name, a) || tg_check_float(name, b) ||
                     tg_check_same_dtype(name, a, b)))
        return NULL;
    broadcast bc;
    if (broadcast_shapes(name, a, b, &bc) != TG_OK) return NULL;
    tg_tensor *out = tg_tensor_new(a->dtype, bc.ndim, bc.shape, 0);
    if (!out) return NULL;
    int same = a->numel == bc.numel && b->numel == bc.numel;
    if (integer) {
        typedef int64_t T;
        typedef uint64_t U;
        const T *x = a->data, *y = b->data;
        T *z = out->data;
        int64_t n = bc.numel;
        switch (op) {
            BINARY_CASE(TG_OP_ADD, (T)((U)u + (U)v))
            BINARY_CASE(TG_OP_SUB, (T)((U)u - (U)v))
            BINARY_CASE(TG_OP_MUL, (T)((U)u * (U)v))
        default: break;
        }
        return out;
    }
    TG_FLOAT_SWITCH(a->dtype, {
        const T *x = a->data, *y = b->data;
        T *z = out->data;
        int64_t n = bc.numel;
        switch (op) {
            BINARY_CASE(TG_OP_ADD, u + v)
            BINARY_CASE(TG_OP_SUB, u - v)
            BINARY_CASE(TG_OP_MUL, u * v)
            BINARY_CASE(TG_OP_DIV, u / v)
            BINARY_CASE(TG_OP_POW, pow(u, v))
        default: break;
        }
    });
    if (tg_should_record(a, b, NULL) && !tg_record(out, op, a, b, NULL)) {
        tg_tensor_release(out);
        return NULL;
    }
    return out;
}

tg_tensor *tg_add(tg_tensor *a, tg_tensor *b) { return binary_forward(TG_OP_ADD, a, b); }
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b) { return binary_forward(TG_OP_SUB, a, b); }
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b) { return binary_forward(TG_OP_MUL, a, b); }
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b) { return binary_forward(TG_OP_DIV, a, b); }
tg_tensor *tg_pow(tg_tensor *a, tg_tensor *b) { return binary_forward(TG_OP_POW, a, b); }

/* d(a op b)/da and /db, accumulated over broadcast dims in output order. */
tg_status tg_binary_backward(tg_node *n) {
    tg_tensor *a = n->inputs[0], *b = n->inputs[1];
    void *ga_raw, *gb_raw;
    if (tg_grad_slot(n, 0, &ga_raw) || tg_grad_slot(n, 1, &gb_raw)) return TG_ERR_NOMEM;
    broadcast bc;
    if (broadcast_shapes(tg_op_rows[n->op]->name, a, b, &bc) != TG_OK) return TG_ERR_SHAPE;
    TG_FLOAT_SWITCH(a->dtype, {
        const T *x = a->data, *y = b->data, *g = n->grad->data;
        T *ga = ga_raw, *gb = gb_raw;
        switch (n->op) {
        case TG_OP_ADD:
            BROADCAST_LOOP(bc, {
                if (ga) ga[ia] += g[io];
                if (gb) gb[ib] += g[io];
            });
            break;
        case TG_OP_SUB:
            BROADCAST_LOOP(bc, {
                if (ga) ga[ia] += g[io];
                if (gb) gb[ib] -= g[io];
            });
            break;
        case TG_OP_MUL:
            BROADCAST_LOOP(bc, {
                if (ga) ga[ia] += g[io] * y[ib];
                if (gb) gb[ib] += g[io] * x[ia];
            });
            break;
        case TG_OP_DIV:
            BROADCAST_LOOP(bc, {
                if (ga) ga[ia] += g[io] / y[ib];
                if (gb) gb[ib] -= g[io] * (x[ia] / y[ib]) / y[ib];
            });
            break;
        case TG_OP_POW:
            /* PyTorch's masks: a zero exponent gives a zero factor for d/da; a zero base
             * with a non-negative exponent gives a zero factor for d/db (not 0 * -inf). */
            BROADCAST_LOOP(bc, {
                T u = x[ia], v = y[ib];
                if (ga) ga[ia] += g[io] * (v == 0 ? (T)0 : v * pow(u, v - 1));
                if (gb) gb[ib] += g[io] * (u == 0 && v >= 0 ? (T)0 : pow(u, v) * log(u));
            });
            break;
        default: break;
        }
    });
    return TG_OK;
}

/* ------------------------------------------------------------------ unary and scalar ops */

#define UNARY_CASE(OP_ID, EXPR)                                                            \
    case OP_ID:                                                                            \
        for (int64_t i = 0; i < n; i++) {                                                  \
            T v = x[i];                                                                    \
            y[i] = (EXPR);                                                                 \
        }                                                                                  \
        break;

/* v ** s (s a double) as PyTorch computes it: sqrt for 0.5 (so (-inf) ** 0.5 is NaN, not
 * C's +inf), 1 / sqrt for -0.5, 1 / v for -1, v * v for 2, v * v * v for 3, 1 / (v * v)
 * for -2, each in T; any other exponent by pow in double, rounded once to T (the exponent
 * is never rounded to float: float32 NaN ** -1e-300 is NaN, not NaN ** -0 = 1). */
#define POW_LIKE_TORCH(T, v, s)                                                            \
    ((s) == 0.5    ? sqrt(v)                                                               \
     : (s) == -0.5 ? (T)1 / sqrt(v)                                                        \
     : (s) == -1   ? (T)1 / (v)                                                            \
     : (s) == 2    ? (v) * (v)                                                             \
     : (s) == 3    ? (v) * (v) * (v)                                                       \
     : (s) == -2   ? (T)1 / ((v) * (v))                                                    \
                   : (T)pow((double)(v), (s)))

/* The vmath kernel (TG_VMATH_*) of a unary op, or -1. */
static int vmath_fn(tg_op op) {
    switch (op) {
    case TG_OP_EXP: return TG_VMATH_EXP;
    case TG_OP_LOG: return TG_VMATH_LOG;
    case TG_OP_SIGMOID: return TG_VMATH_SIGMOID;
    case TG_OP_TANH: return TG_VMATH_TANH;
    case TG_OP_RELU: return TG_VMATH_RELU;
    default: return -1;
    }
}

static tg_tensor *unary_forward(tg_op op, tg_tensor *a, double scalar) {
    const char *name = tg_op_rows[op]->name;
    if (tg_check_float(name, a)) return NULL;
    tg_tensor *out = tg_tensor_new_like(a, 0);
    if (!out) return NULL;
    int64_t n = a->numel;
    int vfn = vmath_fn(op);
    if (vfn >= 0) {
        /* exp, log, sigmoid, tanh, relu: the vectorized kernels (kernels/vmath.h) */
        const tg_vmath_table *k = tg_vmath_kernels();
        if (a->dtype == TG_FLOAT32) k->f32[vfn](a->data, out->data, n);
        else k->f64[vfn](a->data, out->data, n);
    } else TG_FLOAT_SWITCH(a->dtype, {
        const T *x = a->data;
        T *y = out->data;
        const T s = (T)scalar;
        (void)s;
        switch (op) {
            UNARY_CASE(TG_OP_ADD_SCALAR, v + s)
            UNARY_CASE(TG_OP_MUL_SCALAR, v * s)
            UNARY_CASE(TG_OP_RSUB_SCALAR, s - v)
            UNARY_CASE(TG_OP_DIV_SCALAR, v / s)
            UNARY_CASE(TG_OP_RDIV_SCALAR, s / v)
            UNARY_CASE(TG_OP_POW_SCALAR, POW_LIKE_TORCH(T, v, scalar))
            UNARY_CASE(TG_OP_RPOW_SCALAR, pow(s, v))
            UNARY_CASE(TG_OP_NEG, -v)
            /* exp, log, sigmoid (stable for any |v|), tanh and relu (NaN and -0 pass, as
             * in PyTorch) run in kernels/vmath above */
        default: break;
        }
    });
    if (tg_should_record(a, NULL, NULL)) {
        tg_node *node = tg_record(out, op, a, NULL, NULL);
        if (!node) {
            tg_tensor_release(out);
            return NULL;
        }
        node->scalar = scalar;
        if (op == TG_OP_EXP || op == TG_OP_SIGMOID || op == TG_OP_TANH) {
            /* Their derivative is a function of the output: keep a handle on it. */
            node->saved = tg_tensor_view(out, out->ndim, out->shape);
            if (!node->saved) {
                tg_tensor_release(out);
                return NULL;
            }
        }
    }
    return out;
}

tg_tensor *tg_add_scalar(tg_tensor *a, double s) { return unary_forward(TG_OP_ADD_SCALAR, a, s); }
tg_tensor *tg_mul_scalar(tg_tensor *a, double s) { return unary_forward(TG_OP_MUL_SCALAR, a, s); }
tg_tensor *tg_rsub_scalar(tg_tensor *a, double s) { return unary_forward(TG_OP_RSUB_SCALAR, a, s); }
tg_tensor *tg_div_scalar(tg_tensor *a, double s) { return unary_forward(TG_OP_DIV_SCALAR, a, s); }
tg_tensor *tg_rdiv_scalar(tg_tensor *a, double s) { return unary_forward(TG_OP_RDIV_SCALAR, a, s); }
tg_tensor *tg_rpow_scalar(tg_tensor *a, double s) { return unary_forward(TG_OP_RPOW_SCALAR, a, s); }

/* int64 ** a non-negative integer, by squaring, wrapping on overflow as PyTorch does. */
static tg_tensor *int_pow_scalar(tg_tensor *a, double s) {
    if (!(s >= 0) || s != (double)(int64_t)s || s > 9.2e18) {
        tg_fail(TG_ERR_ARG, "pow: an int64 tensor can only be raised to a non-negative integer "
                            "power (got %g); convert it with .float() first", s);
        return NULL;
    }
    tg_tensor *out = tg_tensor_new_like(a, 0);
    if (!out) return NULL;
    const int64_t *x = a->data;
    int64_t *y = out->data;
    uint64_t e0 = (uint64_t)s;
    for (int64_t i = 0; i < a->numel; i++) {
        uint64_t base = (uint64_t)x[i], r = 1;
        for (uint64_t e = e0; e; e >>= 1) {
            if (e & 1) r *= base;
            base *= base;
        }
        y[i] = (int64_t)r;
    }
    return out;
}

tg_tensor *tg_pow_scalar(tg_tensor *a, double s) {
    if (a && a->dtype == TG_INT64) return int_pow_scalar(a, s);
    return unary_forward(TG_OP_POW_SCALAR, a, s);
}
tg_tensor *tg_neg(tg_tensor *a) { return unary_forward(TG_OP_NEG, a, 0); }
tg_tensor *tg_exp(tg_tensor *a) { return unary_forward(TG_OP_EXP, a, 0); }
tg_tensor *tg_log(tg_tensor *a) { return unary_forward(TG_OP_LOG, a, 0); }
tg_tensor *tg_sigmoid(tg_tensor *a) { return unary_forward(TG_OP_SIGMOID, a, 0); }
tg_tensor *tg_tanh(tg_tensor *a) { return unary_forward(TG_OP_TANH, a, 0); }
tg_tensor *tg_relu(tg_tensor *a) { return unary_forward(TG_OP_RELU, a, 0); }

/* gx += gy * dy/dx, with dy/dx from the input x, the saved output y or the scalar s. */
#define GRAD_CASE(OP_ID, EXPR)                                                             \
    case OP_ID:                                                                            \
        for (int64_t i = 0; i < count; i++) gx[i] += (EXPR);                               \
        break;

tg_status tg_unary_backward(tg_node *n) {
    void *gx_raw;
    if (tg_grad_slot(n, 0, &gx_raw)) return TG_ERR_NOMEM;
    if (!gx_raw) return TG_OK;
    tg_tensor *a = n->inputs[0];
    int64_t count = a->numel;
    int vfn = vmath_fn(n->op);
    if (vfn >= 0) {
        /* PyTorch's formulas, vectorized (kernels/vmath.h): exp g y, log g / x, sigmoid
         * g (1 - y) y, tanh g (1 - y y), relu (threshold_backward) x <= 0 ? 0 : g, so
         * NaN's gradient passes through */
        const tg_vmath_table *k = tg_vmath_kernels();
        const void *arg = tg_vmath_grad_uses_output(vfn) ? n->saved->data : a->data;
        if (a->dtype == TG_FLOAT32) k->grad_f32[vfn](arg, n->grad->data, gx_raw, count);
        else k->grad_f64[vfn](arg, n->grad->data, gx_raw, count);
        return TG_OK;
    }
    TG_FLOAT_SWITCH(a->dtype, {
        const T *x = a->data, *g = n->grad->data;
        T *gx = gx_raw;
        const T s = (T)n->scalar;
        switch (n->op) {
            GRAD_CASE(TG_OP_ADD_SCALAR, g[i])
            GRAD_CASE(TG_OP_MUL_SCALAR, g[i] * s)
            GRAD_CASE(TG_OP_RSUB_SCALAR, -g[i])
            GRAD_CASE(TG_OP_DIV_SCALAR, g[i] / s)
            GRAD_CASE(TG_OP_RDIV_SCALAR, -g[i] * s / (x[i] * x[i]))
            /* PyTorch: exponent 0 gives a zero gradient, even at x = 0 (and NaN);
             * otherwise g * ((T)s * x ** (s - 1)), with s - 1 in double. */
            GRAD_CASE(TG_OP_POW_SCALAR, n->scalar == 0 ? (T)0
                      : g[i] * (s * POW_LIKE_TORCH(T, x[i], n->scalar - 1)))
            /* d(s**x)/dx = s**x log s; 0 for s == 0 and x >= 0, as in PyTorch */
            GRAD_CASE(TG_OP_RPOW_SCALAR, g[i] * (s == 0 && x[i] >= 0 ? (T)0 : pow(s, x[i]) * log(s)))
            GRAD_CASE(TG_OP_NEG, -g[i])
            /* exp, log, sigmoid, tanh, relu: kernels/vmath above */
        default: break;
        }
    });
    return TG_OK;
}

/* ------------------------------------------------------------------ rows (legacy backward) */

const tg_op_info tg_row_add = {.name = "add", .backward = tg_binary_backward, .saves = 0};
const tg_op_info tg_row_sub = {.name = "sub", .backward = tg_binary_backward, .saves = 0};
const tg_op_info tg_row_mul = {.name = "mul", .backward = tg_binary_backward, .saves = TG_SAVES_IN0 | TG_SAVES_IN1};
const tg_op_info tg_row_div = {.name = "div", .backward = tg_binary_backward, .saves = TG_SAVES_IN0 | TG_SAVES_IN1};
const tg_op_info tg_row_add_scalar = {.name = "add_scalar", .backward = tg_unary_backward, .saves = 0};
const tg_op_info tg_row_mul_scalar = {.name = "mul_scalar", .backward = tg_unary_backward, .saves = 0};
const tg_op_info tg_row_rsub_scalar = {.name = "rsub_scalar", .backward = tg_unary_backward, .saves = 0};
const tg_op_info tg_row_div_scalar = {.name = "div_scalar", .backward = tg_unary_backward, .saves = 0};
const tg_op_info tg_row_rdiv_scalar = {.name = "rdiv_scalar", .backward = tg_unary_backward, .saves = TG_SAVES_IN0};
const tg_op_info tg_row_pow_scalar = {.name = "pow", .backward = tg_unary_backward, .saves = TG_SAVES_IN0};
const tg_op_info tg_row_neg = {.name = "neg", .backward = tg_unary_backward, .saves = 0};
const tg_op_info tg_row_exp = {.name = "exp", .backward = tg_unary_backward, .saves = TG_SAVES_OUTPUT};
const tg_op_info tg_row_log = {.name = "log", .backward = tg_unary_backward, .saves = TG_SAVES_IN0};
const tg_op_info tg_row_sigmoid = {.name = "sigmoid", .backward = tg_unary_backward, .saves = TG_SAVES_OUTPUT};
const tg_op_info tg_row_tanh = {.name = "tanh", .backward = tg_unary_backward, .saves = TG_SAVES_OUTPUT};
const tg_op_info tg_row_relu = {.name = "relu", .backward = tg_unary_backward, .saves = TG_SAVES_IN0};
const tg_op_info tg_row_pow = {.name = "pow_tensor", .backward = tg_binary_backward, .saves = TG_SAVES_IN0 | TG_SAVES_IN1};
const tg_op_info tg_row_rpow_scalar = {.name = "rpow_scalar", .backward = tg_unary_backward, .saves = TG_SAVES_IN0};
