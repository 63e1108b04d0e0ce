/* ops/loss.c — softmax / log_softmax and the fused losses (MSE, BCE, BCE with logits,
 * cross-entropy). Each loss is one forward kernel and one backward kernel: no chain of
 * elementwise ops, and stable at extreme inputs. */
#include "../internal.h"

#include <string.h>
#include <tgmath.h>

/* ------------------------------------------------------------------ softmax family */

static tg_tensor *softmax_forward(tg_op op, tg_tensor *a, int dim) {
    const char *name = tg_op_rows[op]->name;
    if (tg_check_float(name, a) || tg_normalize_dim(name, a->ndim, &dim)) return NULL;
    tg_tensor *out = tg_tensor_new_like(a, 0);
    if (!out) return NULL;
    int64_t outer, len, inner;
    tg_split_dims(a, dim, &outer, &len, &inner);
    int is_log = op == TG_OP_LOG_SOFTMAX;
    /* For each (o, i): y[o, :, i] = softmax of x[o, :, i] with the max subtracted.
     * Nothing to do for a zero-size input (which may still have 2^40 empty rows). */
    if (a->numel) TG_FLOAT_SWITCH(a->dtype, {
        const T *x = a->data;
        T *y = out->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const T *xs = x + o * len * inner + i;
                T *ys = y + o * len * inner + i;
                T m = -INFINITY;
                for (int64_t l = 0; l < len; l++)
                    if (xs[l * inner] > m) m = xs[l * inner];
                if (m == -INFINITY) m = 0; /* all -inf: avoid inf - inf */
                double s = 0; /* summed in double: float32 stays accurate for many classes */
                for (int64_t l = 0; l < len; l++) s += exp(xs[l * inner] - m);
                if (is_log) {
                    T lse = (T)log(s);
                    for (int64_t l = 0; l < len; l++) ys[l * inner] = xs[l * inner] - m - lse;
                } else {
                    T sum = (T)s;
                    for (int64_t l = 0; l < len; l++) ys[l * inner] = exp(xs[l * inner] - m) / sum;
                }
            }
    });
    if (tg_should_record(a, NULL, NULL)) {
        tg_node *n = tg_record(out, op, a, NULL, NULL);
        if (!n || !(n->saved = tg_tensor_view(out, out->ndim, out->shape))) {
            tg_tensor_release(out);
            return NULL;
        }
        n->iparam[0] = dim;
    }
    return out;
}

tg_tensor *tg_softmax(tg_tensor *a, int dim) { return softmax_forward(TG_OP_SOFTMAX, a, dim); }
tg_tensor *tg_log_softmax(tg_tensor *a, int dim) { return softmax_forward(TG_OP_LOG_SOFTMAX, a, dim); }

/* softmax:     gx = y * (g - sum(g * y))
 * log_softmax: gx = g - exp(y) * sum(g)          (sums along dim) */
tg_status tg_softmax_backward(tg_node *n) {
    void *gx_raw;
    if (tg_grad_slot(n, 0, &gx_raw)) return TG_ERR_NOMEM;
    tg_tensor *a = n->inputs[0];
    if (!gx_raw || !a->numel) return TG_OK;
    int64_t outer, len, inner;
    tg_split_dims(a, n->iparam[0], &outer, &len, &inner);
    int is_log = n->op == TG_OP_LOG_SOFTMAX;
    TG_FLOAT_SWITCH(a->dtype, {
        const T *y = n->saved->data, *g = n->grad->data;
        T *gx = gx_raw;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t base = o * len * inner + i;
                T s = 0;
                for (int64_t l = 0; l < len; l++) {
                    int64_t k = base + l * inner;
                    s += is_log ? g[k] : g[k] * y[k];
                }
                for (int64_t l = 0; l < len; l++) {
                    int64_t k = base + l * inner;
                    gx[k] += is_log ? g[k] - exp(y[k]) * s : y[k] * (g[k] - s);
                }
            }
    });
    return TG_OK;
}

/* ------------------------------------------------------------------ shared loss helpers */

static tg_status check_reduction(const char *op, tg_reduction r) {
    if (r != TG_REDUCE_NONE && r != TG_REDUCE_MEAN && r != TG_REDUCE_SUM)
        return tg_fail(TG_ERR_ARG, "%s: reduction must be none, mean or sum (got %d)", op, (int)r);
    return TG_OK;
}

static tg_status check_same_shape(const char *op, const tg_tensor *p, const tg_tensor *t) {
    if (p->ndim != t->ndim || memcmp(p->shape, t->shape, (size_t)p->ndim * sizeof(int64_t))) {
        char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
        return tg_fail(TG_ERR_SHAPE, "%s: input of shape %s and target of shape %s must have the "
                       "same shape", op, tg_shape_str(p->ndim, p->shape, b1, sizeof b1),
                       tg_shape_str(t->ndim, t->shape, b2, sizeof b2));
    }
    return TG_OK;
}

/* The checks of a loss over two same-shaped floating tensors. */
static tg_status check_elementwise_loss(const char *op, const tg_tensor *pred,
                                        const tg_tensor *target, tg_reduction r) {
    tg_status st = tg_check_float(op, pred);
    if (!st) st = tg_check_float(op, target);
    if (!st) st = tg_check_same_dtype(op, pred, target);
    if (!st) st = check_same_shape(op, pred, target);
    if (!st) st = check_reduction(op, r);
    return st;
}

/* Elementwise loss output: the per-element values (none) or their sum / mean (0-d).
 * Sums are sequential in double, in element order. */
static tg_tensor *reduce_loss(tg_tensor *elems, tg_reduction r) {
    if (r == TG_REDUCE_NONE) return elems;
    tg_tensor *out = tg_tensor_new(elems->dtype, 0, NULL, 0);
    if (!out) {
        tg_tensor_release(elems);
        return NULL;
    }
    TG_FLOAT_SWITCH(elems->dtype, {
        const T *e = elems->data;
        double s = 0;
        for (int64_t i = 0; i < elems->numel; i++) s += e[i];
        if (r == TG_REDUCE_MEAN) s /= (double)elems->numel;
        *(T *)out->data = (T)s;
    });
    tg_tensor_release(elems);
    return out;
}

/* Per-element upstream gradient: g[i] (none), g (sum) or g / count (mean). */
#define LOSS_UPSTREAM(T, n, count, i)                                                      \
    ((n)->iparam[0] == TG_REDUCE_NONE ? ((const T *)(n)->grad->data)[i]                   \
     : (n)->iparam[0] == TG_REDUCE_SUM ? ((const T *)(n)->grad->data)[0]                  \
                                        : ((const T *)(n)->grad->data)[0] / (T)(count))

static tg_tensor *finish_loss(tg_tensor *elems, tg_op op, tg_reduction r, tg_tensor *a,
                              tg_tensor *b) {
    tg_tensor *out = reduce_loss(elems, r);
    if (!out) return NULL;
    if (tg_should_record(a, b, NULL)) {
        tg_node *n = tg_record(out, op, a, b, NULL);
        if (!n) {
            tg_tensor_release(out);
            return NULL;
        }
        n->iparam[0] = (int)r;
    }
    return out;
}

/* ------------------------------------------------------------------ MSE */

tg_tensor *tg_mse_loss(tg_tensor *p, tg_tensor *t, tg_reduction r) {
    const char *op = "mse_loss";
    if (check_elementwise_loss(op, p, t, r)) return NULL;
    tg_tensor *e = tg_tensor_new_like(p, 0);
    if (!e) return NULL;
    TG_FLOAT_SWITCH(p->dtype, {
        const T *x = p->data, *y = t->data;
        T *l = e->data;
        for (int64_t i = 0; i < p->numel; i++) l[i] = (x[i] - y[i]) * (x[i] - y[i]);
    });
    return finish_loss(e, TG_OP_MSE_LOSS, r, p, t);
}

/* d/dp = 2 (p - t) * g, d/dt = -2 (p - t) * g */
tg_status tg_mse_backward(tg_node *n) {
    void *gp_raw, *gt_raw;
    if (tg_grad_slot(n, 0, &gp_raw) || tg_grad_slot(n, 1, &gt_raw)) return TG_ERR_NOMEM;
    tg_tensor *p = n->inputs[0], *t = n->inputs[1];
    TG_FLOAT_SWITCH(p->dtype, {
        const T *x = p->data, *y = t->data;
        T *gp = gp_raw, *gt = gt_raw;
        for (int64_t i = 0; i < p->numel; i++) {
            T d = 2 * (x[i] - y[i]) * LOSS_UPSTREAM(T, n, p->numel, i);
            if (gp) gp[i] += d;
            if (gt) gt[i] -= d;
        }
    });
    return TG_OK;
}

/* ------------------------------------------------------------------ BCE on probabilities */

tg_tensor *tg_binary_cross_entropy(tg_tensor *p, tg_tensor *t, tg_reduction r) {
    const char *op = "binary_cross_entropy";
    if (check_elementwise_loss(op, p, t, r)) return NULL;
    int64_t bad_p = -1, bad_t = -1;
    TG_FLOAT_SWITCH(p->dtype, {
        const T *x = p->data, *y = t->data;
        for (int64_t i = 0; i < p->numel && bad_p < 0 && bad_t < 0; i++) {
            if (!(x[i] >= 0 && x[i] <= 1)) bad_p = i;
            if (!(y[i] >= 0 && y[i] <= 1)) bad_t = i;
        }
    });
    if (bad_p >= 0 || bad_t >= 0) {
        tg_fail(TG_ERR_ARG, "%s: all elements of %s should be between 0 and 1 (flat index %lld)",
                op, bad_p >= 0 ? "input" : "target", (long long)(bad_p >= 0 ? bad_p : bad_t));
        return NULL;
    }
    tg_tensor *e = tg_tensor_new_like(p, 0);
    if (!e) return NULL;
    /* PyTorch: (t - 1) * max(log1p(-p), -100) - t * max(log(p), -100). log1p keeps
     * log(1 - p) accurate for tiny p (log(1 - 1e-10) loses half its digits). */
    TG_FLOAT_SWITCH(p->dtype, {
        const T *x = p->data, *y = t->data;
        T *l = e->data;
        for (int64_t i = 0; i < p->numel; i++) {
            T log_p = log(x[i]), log_1mp = log1p(-x[i]);
            if (log_p < -100) log_p = -100;
            if (log_1mp < -100) log_1mp = -100;
            l[i] = (y[i] - 1) * log_1mp - y[i] * log_p;
        }
    });
    return finish_loss(e, TG_OP_BCE, r, p, t);
}

/* PyTorch: d/dp = g * (p - t) / max((1 - p) * p, 1e-12);
 * d/dt = -logit(p) * g = (log(1 - p) - log(p)) * g, unclamped (+inf at p = 0, -inf at
 * p = 1, as PyTorch's binary_cross_entropy_target_backward), then / numel for mean. */
tg_status tg_bce_backward(tg_node *n) {
    void *gp_raw, *gt_raw;
    if (tg_grad_slot(n, 0, &gp_raw) || tg_grad_slot(n, 1, &gt_raw)) return TG_ERR_NOMEM;
    tg_tensor *p = n->inputs[0], *t = n->inputs[1];
    TG_FLOAT_SWITCH(p->dtype, {
        const T *x = p->data, *y = t->data;
        T *gp = gp_raw, *gt = gt_raw;
        /* PyTorch's EPSILON is the float 1e-12f (9.99999996e-13), in float64 too */
        const T eps = (T)1e-12f;
        if (gp)
            for (int64_t i = 0; i < p->numel; i++) {
                T denom = (1 - x[i]) * x[i];
                if (denom < eps) denom = eps;
                gp[i] += LOSS_UPSTREAM(T, n, p->numel, i) * (x[i] - y[i]) / denom;
            }
        if (gt) {
            const T *g = n->grad->data;
            const int r = n->iparam[0];
            for (int64_t i = 0; i < p->numel; i++) {
                T v = -(T)log(x[i] / (1 - x[i])) * (r == TG_REDUCE_NONE ? g[i] : g[0]);
                gt[i] += r == TG_REDUCE_MEAN ? v / (T)p->numel : v;
            }
        }
    });
    return TG_OK;
}

/* ------------------------------------------------------------------ BCE on logits */

tg_tensor *tg_binary_cross_entropy_with_logits(tg_tensor *x, tg_tensor *t, tg_reduction r) {
    const char *op = "binary_cross_entropy_with_logits";
    if (check_elementwise_loss(op, x, t, r)) return NULL;
    tg_tensor *e = tg_tensor_new_like(x, 0);
    if (!e) return NULL;
    /* max(x, 0) - x t + log1p(exp(-|x|)): no overflow for any logit. An infinite logit
     * takes PyTorch's form (1 - t) x - log_sigmoid(x) with log_sigmoid(x) = min(x, 0)
     * there, so that (+inf, 0) is inf as in PyTorch, not inf - inf * 0 = NaN (the two agree
     * for every finite logit; this one is the more accurate for very negative logits). */
    TG_FLOAT_SWITCH(x->dtype, {
        const T *z = x->data, *y = t->data;
        T *l = e->data;
        for (int64_t i = 0; i < x->numel; i++) {
            T v = z[i];
            if (isinf(v)) l[i] = (1 - y[i]) * v - (v < 0 ? v : 0);
            else l[i] = (v > 0 ? v : 0) - v * y[i] + log1p(exp(-fabs(v)));
        }
    });
    return finish_loss(e, TG_OP_BCE_LOGITS, r, x, t);
}

/* d/dx = g * (sigmoid(x) - t); d/dt = -g * x. */
tg_status tg_bce_logits_backward(tg_node *n) {
    void *gx_raw, *gt_raw;
    if (tg_grad_slot(n, 0, &gx_raw) || tg_grad_slot(n, 1, &gt_raw)) return TG_ERR_NOMEM;
    tg_tensor *x = n->inputs[0], *t = n->inputs[1];
    TG_FLOAT_SWITCH(x->dtype, {
        const T *z = x->data, *y = t->data;
        T *gx = gx_raw, *gt = gt_raw;
        for (int64_t i = 0; i < x->numel; i++) {
            T v = z[i], g = LOSS_UPSTREAM(T, n, x->numel, i);
            T s = v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v));
            if (gx) gx[i] += g * (s - y[i]);
            if (gt) gt[i] -= g * v;
        }
    });
    return TG_OK;
}

/* ------------------------------------------------------------------ cross-entropy */

/* logits (rows, classes) or (classes); labels int64 (rows) or (). */
tg_tensor *tg_cross_entropy(tg_tensor *logits, tg_tensor *labels, tg_reduction r) {
    const char *op = "cross_entropy";
    char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
    if (tg_check_float(op, logits) || check_reduction(op, r)) return NULL;
    if (!labels) {
        tg_fail(TG_ERR_ARG, "%s: got a NULL target", op);
        return NULL;
    }
    if (labels->dtype != TG_INT64) {
        tg_fail(TG_ERR_DTYPE, "%s: target must hold int64 class indices, got %s", op,
                tg_dtype_name(labels->dtype));
        return NULL;
    }
    int ok = (logits->ndim == 2 && labels->ndim == 1 && labels->shape[0] == logits->shape[0]) ||
             (logits->ndim == 1 && labels->ndim == 0);
    if (!ok) {
        tg_fail(TG_ERR_SHAPE, "%s: input of shape %s needs a target of shape (%lld,) (or () for "
                "1-D input), got %s", op, tg_shape_str(logits->ndim, logits->shape, b1, sizeof b1),
                (long long)(logits->ndim == 2 ? logits->shape[0] : 0),
                tg_shape_str(labels->ndim, labels->shape, b2, sizeof b2));
        return NULL;
    }
    int64_t rows = logits->ndim == 2 ? logits->shape[0] : 1;
    int64_t classes = logits->shape[logits->ndim - 1];
    const int64_t *lab = labels->data;
    for (int64_t i = 0; i < rows; i++)
        if (lab[i] < 0 || lab[i] >= classes) {
            tg_fail(TG_ERR_INDEX, "%s: target %lld at index %lld is out of range for %lld classes",
                    op, (long long)lab[i], (long long)i, (long long)classes);
            return NULL;
        }
    int64_t stats_shape[2] = {rows, 2};
    tg_tensor *e = tg_tensor_new(logits->dtype, logits->ndim == 2 ? 1 : 0, &rows, 0);
    tg_tensor *stats = tg_tensor_new(logits->dtype, 2, stats_shape, 0);
    if (!e || !stats) {
        tg_tensor_release(e);
        tg_tensor_release(stats);
        return NULL;
    }
    /* As PyTorch's log_softmax + nll: with m the row max and s = log(sum exp(x - m)),
     * loss[i] = s - (x[i, label] - m). m and s are kept apart (stats[i] = {m, s}):
     * folding them into one logsumexp (m + s) would round away s when |m| is large
     * (float32 logits of 1e4 lose ~1e-3 of it). */
    TG_FLOAT_SWITCH(logits->dtype, {
        const T *x = logits->data;
        T *l = e->data, *st = stats->data;
        for (int64_t i = 0; i < rows; i++) {
            const T *row = x + i * classes;
            T m = -INFINITY;
            for (int64_t c = 0; c < classes; c++)
                if (row[c] > m) m = row[c];
            if (m == -INFINITY) m = 0;
            double sum = 0; /* in double, as in softmax */
            for (int64_t c = 0; c < classes; c++) sum += exp(row[c] - m);
            T lsum = (T)log(sum);
            st[2 * i] = m;
            st[2 * i + 1] = lsum;
            l[i] = -((row[lab[i]] - m) - lsum);
        }
    });
    tg_tensor *out = reduce_loss(e, r);
    if (!out) {
        tg_tensor_release(stats);
        return NULL;
    }
    if (tg_should_record(logits, NULL, NULL)) {
        tg_node *n = tg_record(out, TG_OP_CROSS_ENTROPY, logits, labels, NULL);
        if (!n) {
            tg_tensor_release(out);
            tg_tensor_release(stats);
            return NULL;
        }
        n->iparam[0] = (int)r;
        n->saved = stats; /* the node owns it */
    } else {
        tg_tensor_release(stats);
    }
    return out;
}

/* d/dx[i, c] = g_i * (softmax(x[i])[c] - [c == label[i]]),
 * softmax(x[i])[c] = exp((x[i, c] - m) - s) from the saved stats {m, s}. */
tg_status tg_cross_entropy_backward(tg_node *n) {
    void *gx_raw;
    if (tg_grad_slot(n, 0, &gx_raw)) return TG_ERR_NOMEM;
    tg_tensor *logits = n->inputs[0], *labels = n->inputs[1];
    if (!gx_raw || !logits->numel) return TG_OK;
    int64_t rows = logits->ndim == 2 ? logits->shape[0] : 1;
    int64_t classes = logits->shape[logits->ndim - 1];
    const int64_t *lab = labels->data;
    TG_FLOAT_SWITCH(logits->dtype, {
        const T *x = logits->data, *st = n->saved->data;
        T *gx = gx_raw;
        for (int64_t i = 0; i < rows; i++) {
            T g = LOSS_UPSTREAM(T, n, rows, i);
            const T m = st[2 * i], lsum = st[2 * i + 1];
            for (int64_t c = 0; c < classes; c++) {
                T p = exp((x[i * classes + c] - m) - lsum);
                gx[i * classes + c] += g * (p - (c == lab[i] ? 1 : 0));
            }
        }
    });
    return TG_OK;
}

/* ------------------------------------------------------------------ rows (legacy backward) */

const tg_op_info tg_row_softmax = {.name = "softmax", .backward = tg_softmax_backward, .saves = TG_SAVES_OUTPUT};
const tg_op_info tg_row_log_softmax = {.name = "log_softmax", .backward = tg_softmax_backward, .saves = TG_SAVES_OUTPUT};
const tg_op_info tg_row_mse_loss = {.name = "mse_loss", .backward = tg_mse_backward, .saves = TG_SAVES_IN0 | TG_SAVES_IN1};
const tg_op_info tg_row_bce = {.name = "binary_cross_entropy", .backward = tg_bce_backward, .saves = TG_SAVES_IN0 | TG_SAVES_IN1};
const tg_op_info tg_row_bce_logits = {.name = "binary_cross_entropy_with_logits", .backward = tg_bce_logits_backward, .saves = TG_SAVES_IN0 | TG_SAVES_IN1};
const tg_op_info tg_row_cross_entropy = {.name = "cross_entropy", .backward = tg_cross_entropy_backward, .saves = TG_SAVES_IN0 | TG_SAVES_IN1 | TG_SAVES_OUTPUT};
