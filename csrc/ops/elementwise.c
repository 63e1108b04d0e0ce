/* ops/elementwise.c — binary ops with numpy broadcasting, ops with a scalar, and unary
 * ops. Each forward sits beside its backward. */
#include "../internal.h"

#include <string.h>
#include <tgmath.h>

/* ------------------------------------------------------------------ broadcasting */

/* Output shape and per-input strides (0 along broadcast dims), aligned to the output. */
typedef struct {
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t sa[TG_MAX_DIMS], sb[TG_MAX_DIMS];
    int64_t numel;
} broadcast;

static void contiguous_strides(const tg_tensor *t, int out_ndim, int64_t *strides) {
    int64_t s = 1;
    for (int d = out_ndim - 1; d >= 0; d--) {
        int td = d - (out_ndim - t->ndim);
        if (td < 0 || t->shape[td] == 1) {
            strides[d] = 0;
        } else {
            strides[d] = s;
        }
        if (td >= 0) s *= t->shape[td];
    }
}

static tg_status broadcast_shapes(const char *op, const tg_tensor *a, const tg_tensor *b,
                                  broadcast *bc) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    bc->ndim = nd;
    bc->numel = 1;
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
            return tg_fail(TG_ERR_SHAPE,
                           "%s: shapes %s and %s are not broadcastable (size %lld vs %lld at "
                           "dim %d from the right)",
                           op, tg_shape_str(a->ndim, a->shape, b1, sizeof b1),
                           tg_shape_str(b->ndim, b->shape, b2, sizeof b2), (long long)sa,
                           (long long)sb, nd - d);
        }
        bc->shape[d] = sa == 1 ? sb : sa;
        bc->numel *= bc->shape[d];
    }
    contiguous_strides(a, nd, bc->sa);
    contiguous_strides(b, nd, bc->sb);
    return TG_OK;
}

/* Run BODY for every output element in row-major order with ia, ib, io the flat
 * indices into a, b and the output. The order is fixed, so backward's accumulation into
 * broadcast inputs is deterministic. */
#define BROADCAST_LOOP(bc, ...)                                                            \
    do {                                                                                   \
        int nd_ = (bc).ndim;                                                               \
        int64_t inner_ = nd_ ? (bc).shape[nd_ - 1] : 1;                                    \
        if ((bc).numel == 0) break;                                                        \
        int64_t sai_ = nd_ ? (bc).sa[nd_ - 1] : 0, sbi_ = nd_ ? (bc).sb[nd_ - 1] : 0;      \
        int64_t idx_[TG_MAX_DIMS] = {0}, a0_ = 0, b0_ = 0, outer_ = (bc).numel / inner_;   \
        for (int64_t o_ = 0; o_ < outer_; o_++) {                                          \
            for (int64_t j_ = 0; j_ < inner_; j_++) {                                      \
                int64_t ia = a0_ + j_ * sai_, ib = b0_ + j_ * sbi_, io = o_ * inner_ + j_;  \
                __VA_ARGS__                                                                       \
            }                                                                              \
            for (int d_ = nd_ - 2; d_ >= 0; d_--) {                                        \
                idx_[d_]++;                                                                \
                a0_ += (bc).sa[d_];                                                        \
                b0_ += (bc).sb[d_];                                                        \
                if (idx_[d_] < (bc).shape[d_]) break;                                      \
                a0_ -= (bc).sa[d_] * (bc).shape[d_];                                       \
                b0_ -= (bc).sb[d_] * (bc).shape[d_];                                       \
                idx_[d_] = 0;                                                              \
            }                                                                              \
        }                                                                                  \
    } while (0)

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
    const char *name = tg_op_table[op].name;
    if (tg_check_float(name, a) || tg_check_float(name, b) || tg_check_same_dtype(name, a, b))
        return NULL;
    broadcast bc;
    if (broadcast_shapes(name, a, b, &bc) != TG_OK) return NULL;
    tg_tensor *out = tg_tensor_new(a->dtype, bc.ndim, bc.shape, 0);
    if (!out) return NULL;
    int same = a->numel == bc.numel && b->numel == bc.numel;
    TG_FLOAT_SWITCH(a->dtype, {
        const T *x = a->data, *y = b->data;
        T *z = out->data;
        int64_t n = bc.numel;
        switch (op) {
            BINARY_CASE(TG_OP_ADD, u + v)
            BINARY_CASE(TG_OP_SUB, u - v)
            BINARY_CASE(TG_OP_MUL, u * v)
            BINARY_CASE(TG_OP_DIV, u / v)
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

/* d(a op b)/da and /db, accumulated over broadcast dims in output order. */
tg_status tg_binary_backward(tg_node *n) {
    tg_tensor *a = n->inputs[0], *b = n->inputs[1];
    void *ga_raw, *gb_raw;
    if (tg_grad_slot(n, 0, &ga_raw) || tg_grad_slot(n, 1, &gb_raw)) return TG_ERR_NOMEM;
    broadcast bc;
    if (broadcast_shapes(tg_op_table[n->op].name, a, b, &bc) != TG_OK) return TG_ERR_SHAPE;
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

static tg_tensor *unary_forward(tg_op op, tg_tensor *a, double scalar) {
    const char *name = tg_op_table[op].name;
    if (tg_check_float(name, a)) return NULL;
    tg_tensor *out = tg_tensor_new_like(a, 0);
    if (!out) return NULL;
    int64_t n = a->numel;
    TG_FLOAT_SWITCH(a->dtype, {
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
            UNARY_CASE(TG_OP_NEG, -v)
            UNARY_CASE(TG_OP_EXP, exp(v))
            UNARY_CASE(TG_OP_LOG, log(v))
            /* Stable for any |v|: never exp of a large positive number. */
            UNARY_CASE(TG_OP_SIGMOID, v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v)))
            UNARY_CASE(TG_OP_TANH, tanh(v))
            UNARY_CASE(TG_OP_RELU, v < 0 ? (T)0 : v) /* NaN and -0 pass, as in PyTorch */
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
tg_tensor *tg_pow_scalar(tg_tensor *a, double s) { return unary_forward(TG_OP_POW_SCALAR, a, s); }
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
    TG_FLOAT_SWITCH(a->dtype, {
        const T *x = a->data, *g = n->grad->data;
        const T *y = n->saved ? (const T *)n->saved->data : NULL;
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
            GRAD_CASE(TG_OP_NEG, -g[i])
            GRAD_CASE(TG_OP_EXP, g[i] * y[i])
            GRAD_CASE(TG_OP_LOG, g[i] / x[i])
            GRAD_CASE(TG_OP_SIGMOID, g[i] * (1 - y[i]) * y[i])
            GRAD_CASE(TG_OP_TANH, g[i] * (1 - y[i] * y[i]))
            /* PyTorch (threshold_backward): 0 where relu(x) <= 0, else g, so NaN's
             * gradient passes through */
            GRAD_CASE(TG_OP_RELU, x[i] <= 0 ? (T)0 : g[i])
        default: break;
        }
    });
    return TG_OK;
}
