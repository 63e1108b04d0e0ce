/* ops/loss.c — softmax / log_softmax and the fused losses (MSE, BCE, BCE with logits,
 * cross-entropy), each a row (internal.h, "op rows"): a check on metas, a forward kernel
 * and a backward kernel, with the data-dependent checks (BCE's [0, 1] range, cross-
 * entropy's labels) as the row's validate. Each loss is one forward kernel and one
 * backward kernel: no chain of elementwise ops, and stable at extreme inputs. */
#include "../internal.h"

#include <string.h>
#include <tgmath.h>

/* ------------------------------------------------------------------ softmax family
 *
 * args: iparam[0] = dim (normalised by check); dims = {outer, len, inner} around dim.
 * The backward reads the output (TG_SAVES_OUTPUT). */

static tg_status softmax_check(tg_op_args *a) {
    const char *name = tg_op_rows[a->op]->name;
    const tg_meta *x = &a->in[0];
    tg_status st = tg_check_float_meta(name, x);
    if (!st) st = tg_normalize_dim(name, x->ndim, &a->iparam[0]);
    if (st) return st;
    tg_split_dims(x, a->iparam[0], &a->dims[0], &a->dims[1], &a->dims[2]);
    a->out = *x;
    return TG_OK;
}

/* For each (o, i): y[o, :, i] = softmax of x[o, :, i] with the max subtracted. Nothing
 * to do for a zero-size input (which may still have 2^40 empty rows). */
static void softmax_forward_kernel(const tg_op_args *a, const tg_fwd_bufs *b) {
    if (!a->out.numel) return;
    const int64_t outer = a->dims[0], len = a->dims[1], inner = a->dims[2];
    const int is_log = a->op == TG_OP_LOG_SOFTMAX;
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *x = b->in[0];
        T *y = b->out;
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
}

/* softmax:     gx = y * (g - sum(g * y))
 * log_softmax: gx = g - exp(y) * sum(g)          (sums along dim) */
static void softmax_backward_kernel(const tg_op_args *a, const tg_bwd_bufs *b) {
    if (!a->out.numel) return;
    const int64_t outer = a->dims[0], len = a->dims[1], inner = a->dims[2];
    const int is_log = a->op == TG_OP_LOG_SOFTMAX;
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *y = b->out, *g = b->gout;
        T *gx = b->gin[0];
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
}

const tg_op_info tg_row_softmax = {.name = "softmax",
                                   .saves = TG_SAVES_OUTPUT,
                                   .check = softmax_check,
                                   .forward = softmax_forward_kernel,
                                   .backward_kernel = softmax_backward_kernel};
const tg_op_info tg_row_log_softmax = {.name = "log_softmax",
                                       .saves = TG_SAVES_OUTPUT,
                                       .check = softmax_check,
                                       .forward = softmax_forward_kernel,
                                       .backward_kernel = softmax_backward_kernel};

static tg_tensor *softmax_apply(tg_op op, tg_tensor *a, int dim) {
    tg_op_args args = {.op = op, .n_in = 1, .iparam = {dim}};
    return tg_apply(&args, &a);
}

tg_tensor *tg_softmax(tg_tensor *a, int dim) { return softmax_apply(TG_OP_SOFTMAX, a, dim); }
tg_tensor *tg_log_softmax(tg_tensor *a, int dim) { return softmax_apply(TG_OP_LOG_SOFTMAX, a, dim); }

/* ------------------------------------------------------------------ shared loss helpers
 *
 * args of every loss: iparam[0] = the reduction. The output is the per-element losses
 * (none, written straight into the output) or their sum / mean (a 0-d output; the
 * per-element losses go to the forward scratch first). */

static tg_status check_reduction(const char *op, int r) {
    if (r != TG_REDUCE_NONE && r != TG_REDUCE_MEAN && r != TG_REDUCE_SUM)
        return tg_fail(TG_ERR_ARG, "%s: reduction must be none, mean or sum (got %d)", op, r);
    return TG_OK;
}

static tg_status check_same_shape(const char *op, const tg_meta *p, const tg_meta *t) {
    if (p->ndim != t->ndim || memcmp(p->shape, t->shape, (size_t)p->ndim * sizeof(int64_t))) {
        char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
        return tg_fail(TG_ERR_SHAPE, "%s: input of shape %s and target of shape %s must have the "
                       "same shape", op, tg_shape_str(p->ndim, p->shape, b1, sizeof b1),
                       tg_shape_str(t->ndim, t->shape, b2, sizeof b2));
    }
    return TG_OK;
}

/* The output meta and forward scratch of a loss over `count` per-element values of
 * `dtype` in shape (ndim, shape). */
static void loss_output(tg_op_args *a, tg_dtype dtype, int ndim, const int64_t *shape,
                        int64_t count) {
    if (a->iparam[0] == TG_REDUCE_NONE) {
        tg_meta_set(&a->out, dtype, ndim, shape);
        a->fwd_scratch = 0;
    } else {
        tg_meta_set(&a->out, dtype, 0, NULL);
        a->fwd_scratch = (size_t)count * tg_dtype_size(dtype);
    }
}

/* The check of a loss over two same-shaped floating tensors. */
static tg_status elementwise_loss_check(tg_op_args *a) {
    const char *op = tg_op_rows[a->op]->name;
    const tg_meta *pred = &a->in[0], *target = &a->in[1];
    tg_status st = tg_check_float_meta(op, pred);
    if (!st && !(a->present & 2u)) st = tg_fail(TG_ERR_ARG, "%s: got a NULL tensor", op);
    if (!st) st = tg_check_float_meta(op, target);
    if (!st) st = tg_check_same_dtype_meta(op, pred, target);
    if (!st) st = check_same_shape(op, pred, target);
    if (!st) st = check_reduction(op, a->iparam[0]);
    if (st) return st;
    loss_output(a, pred->dtype, pred->ndim, pred->shape, pred->numel);
    return TG_OK;
}

/* Where the forward kernel writes the per-element losses: the output (none) or the
 * scratch. */
static void *loss_elems(const tg_op_args *a, const tg_fwd_bufs *b) {
    return a->iparam[0] == TG_REDUCE_NONE ? b->out : b->scratch;
}

/* Reduce the per-element losses into the 0-d output (sum / mean); nothing for none.
 * Sums are sequential in double, in element order. */
static void loss_reduce(const tg_op_args *a, const tg_fwd_bufs *b, int64_t count) {
    const int r = a->iparam[0];
    if (r == TG_REDUCE_NONE) return;
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *e = b->scratch;
        double s = 0;
        for (int64_t i = 0; i < count; i++) s += e[i];
        if (r == TG_REDUCE_MEAN) s /= (double)count;
        *(T *)b->out = (T)s;
    });
}

/* Per-element upstream gradient: g[i] (none), g (sum) or g / count (mean). */
#define LOSS_UPSTREAM(T, a, b, count, i)                                                   \
    ((a)->iparam[0] == TG_REDUCE_NONE ? ((const T *)(b)->gout)[i]                         \
     : (a)->iparam[0] == TG_REDUCE_SUM ? ((const T *)(b)->gout)[0]                        \
                                        : ((const T *)(b)->gout)[0] / (T)(count))

static tg_tensor *loss_apply(tg_op op, tg_tensor *a, tg_tensor *b, tg_reduction r) {
    tg_op_args args = {.op = op, .n_in = 2, .iparam = {(int)r}};
    tg_tensor *in[2] = {a, b};
    return tg_apply(&args, in);
}

/* ------------------------------------------------------------------ MSE */

static void mse_forward_kernel(const tg_op_args *a, const tg_fwd_bufs *b) {
    const int64_t n = a->in[0].numel;
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *x = b->in[0], *y = b->in[1];
        T *l = loss_elems(a, b);
        for (int64_t i = 0; i < n; i++) l[i] = (x[i] - y[i]) * (x[i] - y[i]);
    });
    loss_reduce(a, b, n);
}

/* d/dp = 2 (p - t) * g, d/dt = -2 (p - t) * g */
static void mse_backward_kernel(const tg_op_args *a, const tg_bwd_bufs *b) {
    const int64_t n = a->in[0].numel;
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *x = b->in[0], *y = b->in[1];
        T *gp = b->gin[0], *gt = b->gin[1];
        for (int64_t i = 0; i < n; i++) {
            T d = 2 * (x[i] - y[i]) * LOSS_UPSTREAM(T, a, b, n, i);
            if (gp) gp[i] += d;
            if (gt) gt[i] -= d;
        }
    });
}

const tg_op_info tg_row_mse_loss = {.name = "mse_loss",
                                    .saves = TG_SAVES_IN0 | TG_SAVES_IN1,
                                    .check = elementwise_loss_check,
                                    .forward = mse_forward_kernel,
                                    .backward_kernel = mse_backward_kernel};

tg_tensor *tg_mse_loss(tg_tensor *p, tg_tensor *t, tg_reduction r) {
    return loss_apply(TG_OP_MSE_LOSS, p, t, r);
}

/* ------------------------------------------------------------------ BCE on probabilities */

/* Every input and target element in [0, 1] (NaN is not): the first bad flat index. */
static tg_status bce_validate(const tg_op_args *a, const void *const *in) {
    const int64_t n = a->in[0].numel;
    int64_t bad_p = -1, bad_t = -1;
    TG_FLOAT_SWITCH(a->in[0].dtype, {
        const T *x = in[0], *y = in[1];
        for (int64_t i = 0; i < n && bad_p < 0 && bad_t < 0; i++) {
            if (!(x[i] >= 0 && x[i] <= 1)) bad_p = i;
            if (!(y[i] >= 0 && y[i] <= 1)) bad_t = i;
        }
    });
    if (bad_p >= 0 || bad_t >= 0)
        return tg_fail(TG_ERR_ARG, "%s: all elements of %s should be between 0 and 1 (flat index %lld)",
                       tg_op_rows[a->op]->name, bad_p >= 0 ? "input" : "target",
                       (long long)(bad_p >= 0 ? bad_p : bad_t));
    return TG_OK;
}

/* PyTorch: (t - 1) * max(log1p(-p), -100) - t * max(log(p), -100). log1p keeps
 * log(1 - p) accurate for tiny p (log(1 - 1e-10) loses half its digits). */
static void bce_forward_kernel(const tg_op_args *a, const tg_fwd_bufs *b) {
    const int64_t n = a->in[0].numel;
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *x = b->in[0], *y = b->in[1];
        T *l = loss_elems(a, b);
        for (int64_t i = 0; i < n; i++) {
            T log_p = log(x[i]), log_1mp = log1p(-x[i]);
            if (log_p < -100) log_p = -100;
            if (log_1mp < -100) log_1mp = -100;
            l[i] = (y[i] - 1) * log_1mp - y[i] * log_p;
        }
    });
    loss_reduce(a, b, n);
}

/* PyTorch: d/dp = g * (p - t) / max((1 - p) * p, 1e-12);
 * d/dt = -logit(p) * g = (log(1 - p) - log(p)) * g, unclamped (+inf at p = 0, -inf at
 * p = 1, as PyTorch's binary_cross_entropy_target_backward), then / numel for mean. */
static void bce_backward_kernel(const tg_op_args *a, const tg_bwd_bufs *b) {
    const int64_t n = a->in[0].numel;
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *x = b->in[0], *y = b->in[1];
        T *gp = b->gin[0], *gt = b->gin[1];
        /* PyTorch's EPSILON is the float 1e-12f (9.99999996e-13), in float64 too */
        const T eps = (T)1e-12f;
        if (gp)
            for (int64_t i = 0; i < n; i++) {
                T denom = (1 - x[i]) * x[i];
                if (denom < eps) denom = eps;
                gp[i] += LOSS_UPSTREAM(T, a, b, n, i) * (x[i] - y[i]) / denom;
            }
        if (gt) {
            const T *g = b->gout;
            const int r = a->iparam[0];
            for (int64_t i = 0; i < n; i++) {
                T v = -(T)log(x[i] / (1 - x[i])) * (r == TG_REDUCE_NONE ? g[i] : g[0]);
                gt[i] += r == TG_REDUCE_MEAN ? v / (T)n : v;
            }
        }
    });
}

const tg_op_info tg_row_bce = {.name = "binary_cross_entropy",
                               .saves = TG_SAVES_IN0 | TG_SAVES_IN1,
                               .check = elementwise_loss_check,
                               .validate = bce_validate,
                               .forward = bce_forward_kernel,
                               .backward_kernel = bce_backward_kernel};

tg_tensor *tg_binary_cross_entropy(tg_tensor *p, tg_tensor *t, tg_reduction r) {
    return loss_apply(TG_OP_BCE, p, t, r);
}

/* ------------------------------------------------------------------ BCE on logits */

/* max(x, 0) - x t + log1p(exp(-|x|)): no overflow for any logit. An infinite logit takes
 * PyTorch's form (1 - t) x - log_sigmoid(x) with log_sigmoid(x) = min(x, 0) there, so
 * that (+inf, 0) is inf as in PyTorch, not inf - inf * 0 = NaN (the two agree for every
 * finite logit; this one is the more accurate for very negative logits). */
static void bce_logits_forward_kernel(const tg_op_args *a, const tg_fwd_bufs *b) {
    const int64_t n = a->in[0].numel;
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *z = b->in[0], *y = b->in[1];
        T *l = loss_elems(a, b);
        for (int64_t i = 0; i < n; i++) {
            T v = z[i];
            if (isinf(v)) l[i] = (1 - y[i]) * v - (v < 0 ? v : 0);
            else l[i] = (v > 0 ? v : 0) - v * y[i] + log1p(exp(-fabs(v)));
        }
    });
    loss_reduce(a, b, n);
}

/* d/dx = g * (sigmoid(x) - t); d/dt = -g * x. */
static void bce_logits_backward_kernel(const tg_op_args *a, const tg_bwd_bufs *b) {
    const int64_t n = a->in[0].numel;
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *z = b->in[0], *y = b->in[1];
        T *gx = b->gin[0], *gt = b->gin[1];
        for (int64_t i = 0; i < n; i++) {
            T v = z[i], g = LOSS_UPSTREAM(T, a, b, n, i);
            T s = v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v));
            if (gx) gx[i] += g * (s - y[i]);
            if (gt) gt[i] -= g * v;
        }
    });
}

const tg_op_info tg_row_bce_logits = {.name = "binary_cross_entropy_with_logits",
                                      .saves = TG_SAVES_IN0 | TG_SAVES_IN1,
                                      .check = elementwise_loss_check,
                                      .forward = bce_logits_forward_kernel,
                                      .backward_kernel = bce_logits_backward_kernel};

tg_tensor *tg_binary_cross_entropy_with_logits(tg_tensor *x, tg_tensor *t, tg_reduction r) {
    return loss_apply(TG_OP_BCE_LOGITS, x, t, r);
}

/* ------------------------------------------------------------------ cross-entropy
 *
 * logits (rows, classes) or (classes), floating; labels int64 (rows) or (), which never
 * require grad. args: dims = {rows, classes}; the private saved buffer holds each row's
 * statistics {max, log-sum-exp of (x - max)} (2 * rows elements of the logits' dtype),
 * written by the forward kernel and read by the backward kernel. */

static tg_status cross_entropy_check(tg_op_args *a) {
    const char *op = "cross_entropy";
    const tg_meta *logits = &a->in[0], *labels = &a->in[1];
    char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
    tg_status st = tg_check_float_meta(op, logits);
    if (!st) st = check_reduction(op, a->iparam[0]);
    if (st) return st;
    if (!(a->present & 2u)) return tg_fail(TG_ERR_ARG, "%s: got a NULL target", op);
    if (labels->dtype != TG_INT64)
        return tg_fail(TG_ERR_DTYPE, "%s: target must hold int64 class indices, got %s", op,
                       tg_dtype_name(labels->dtype));
    int ok = (logits->ndim == 2 && labels->ndim == 1 && labels->shape[0] == logits->shape[0]) ||
             (logits->ndim == 1 && labels->ndim == 0);
    if (!ok)
        return tg_fail(TG_ERR_SHAPE, "%s: input of shape %s needs a target of shape (%lld,) (or () "
                       "for 1-D input), got %s", op,
                       tg_shape_str(logits->ndim, logits->shape, b1, sizeof b1),
                       (long long)(logits->ndim == 2 ? logits->shape[0] : 0),
                       tg_shape_str(labels->ndim, labels->shape, b2, sizeof b2));
    const int64_t rows = logits->ndim == 2 ? logits->shape[0] : 1;
    a->dims[0] = rows;
    a->dims[1] = logits->shape[logits->ndim - 1];
    a->saved_numel = 2 * rows;
    loss_output(a, logits->dtype, logits->ndim == 2 ? 1 : 0, &rows, rows);
    return TG_OK;
}

/* Every label in [0, classes). */
static tg_status cross_entropy_validate(const tg_op_args *a, const void *const *in) {
    const int64_t rows = a->dims[0], classes = a->dims[1];
    const int64_t *lab = in[1];
    for (int64_t i = 0; i < rows; i++)
        if (lab[i] < 0 || lab[i] >= classes)
            return tg_fail(TG_ERR_INDEX, "%s: target %lld at index %lld is out of range for %lld "
                           "classes", "cross_entropy", (long long)lab[i], (long long)i,
                           (long long)classes);
    return TG_OK;
}

/* As PyTorch's log_softmax + nll: with m the row max and s = log(sum exp(x - m)),
 * loss[i] = s - (x[i, label] - m). m and s are kept apart (saved[i] = {m, s}): folding
 * them into one logsumexp (m + s) would round away s when |m| is large (float32 logits
 * of 1e4 lose ~1e-3 of it). */
static void cross_entropy_forward_kernel(const tg_op_args *a, const tg_fwd_bufs *b) {
    const int64_t rows = a->dims[0], classes = a->dims[1];
    const int64_t *lab = b->in[1];
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *x = b->in[0];
        T *l = loss_elems(a, b), *st = b->saved;
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
    loss_reduce(a, b, rows);
}

/* d/dx[i, c] = g_i * (softmax(x[i])[c] - [c == label[i]]),
 * softmax(x[i])[c] = exp((x[i, c] - m) - s) from the saved statistics {m, s}. The labels
 * take no gradient (gin[1] is never written). */
static void cross_entropy_backward_kernel(const tg_op_args *a, const tg_bwd_bufs *b) {
    if (!b->gin[0] || !a->in[0].numel) return;
    const int64_t rows = a->dims[0], classes = a->dims[1];
    const int64_t *lab = b->in[1];
    TG_FLOAT_SWITCH(a->out.dtype, {
        const T *x = b->in[0], *st = b->saved;
        T *gx = b->gin[0];
        for (int64_t i = 0; i < rows; i++) {
            T g = LOSS_UPSTREAM(T, a, b, rows, i);
            const T m = st[2 * i], lsum = st[2 * i + 1];
            for (int64_t c = 0; c < classes; c++) {
                T p = exp((x[i * classes + c] - m) - lsum);
                gx[i * classes + c] += g * (p - (c == lab[i] ? 1 : 0));
            }
        }
    });
}

const tg_op_info tg_row_cross_entropy = {.name = "cross_entropy",
                                         .saves = TG_SAVES_IN0 | TG_SAVES_IN1,
                                         .check = cross_entropy_check,
                                         .validate = cross_entropy_validate,
                                         .forward = cross_entropy_forward_kernel,
                                         .backward_kernel = cross_entropy_backward_kernel};

tg_tensor *tg_cross_entropy(tg_tensor *logits, tg_tensor *labels, tg_reduction r) {
    return loss_apply(TG_OP_CROSS_ENTROPY, logits, labels, r);
}
