/* ops/reduce.c — sum and mean, over all elements or along one dim. */
#include "../internal.h"

#include <math.h>
#include <stdlib.h>

/* Pairwise sum of n elements spaced by stride: accurate (error ~ log n) and in a fixed
 * order. float inputs are summed in double. */
#define DEFINE_PAIRWISE_SUM(NAME, T)                                                       \
    static double NAME(const T *x, int64_t n, int64_t stride) {                            \
        if (n <= 32) {                                                                     \
            double s = 0;                                                                  \
            for (int64_t i = 0; i < n; i++) s += x[i * stride];                            \
            return s;                                                                      \
        }                                                                                  \
        int64_t half = n / 2;                                                              \
        return NAME(x, half, stride) + NAME(x + half * stride, n - half, stride);          \
    }
DEFINE_PAIRWISE_SUM(pairwise_sum_f32, float)
DEFINE_PAIRWISE_SUM(pairwise_sum_f64, double)

static tg_tensor *reduce_forward(tg_op op, tg_tensor *a, int all_dims, int dim, int keepdim) {
    const char *name = tg_op_rows[op]->name;
    if (tg_check_float(name, a)) return NULL;
    if (!all_dims && tg_normalize_dim(name, a->ndim, &dim)) return NULL;
    int64_t shape[TG_MAX_DIMS] = {0};
    int ndim = tg_reduced_shape(a, all_dims, dim, keepdim, shape);
    tg_tensor *out = tg_tensor_new(a->dtype, ndim, shape, 0);
    if (!out) return NULL;
    int64_t outer, len, inner;
    if (all_dims) {
        outer = 1;
        len = a->numel;
        inner = 1;
    } else {
        tg_split_dims(a, dim, &outer, &len, &inner);
    }
    int is_mean = op == TG_OP_MEAN;
    /* mean of an empty set is NaN, as in PyTorch (0/0). */
    double scale_count = (double)len;
    if (a->numel == 0) {
        /* Every output element reduces an empty set. Never loop over the empty input's
         * dims: zeros(2**40, 0).sum(0) has 2^40 rows of nothing. */
        TG_FLOAT_SWITCH(a->dtype, {
            T *y = out->data;
            for (int64_t i = 0; i < out->numel; i++) y[i] = is_mean ? (T)NAN : (T)0;
        });
    } else if (inner == 1) {
        for (int64_t o = 0; o < outer; o++) {
            double s = a->dtype == TG_FLOAT32 ? pairwise_sum_f32((const float *)a->data + o * len, len, 1)
                                              : pairwise_sum_f64((const double *)a->data + o * len, len, 1);
            if (a->dtype == TG_FLOAT32) {
                float v = (float)s;
                ((float *)out->data)[o] = is_mean ? (float)(s / scale_count) : v;
            } else {
                ((double *)out->data)[o] = is_mean ? s / scale_count : s;
            }
        }
    } else {
        /* Sum the rows of each (len, inner) slab in double, in blocks of ROW_BLOCK rows
         * (a block's partial sums are added to the total): float32 sums keep full
         * precision (a float accumulator stalls: 2e5 rows of 0.1 summed to 19959.5) and
         * the error of float64 sums grows with len / ROW_BLOCK + ROW_BLOCK, not len.
         * Rows are read contiguously; the order is fixed, so results are deterministic. */
        enum { ROW_BLOCK = 64 };
        double *acc = tg_malloc((size_t)inner * 2 * sizeof *acc);
        if (!acc) {
            tg_tensor_release(out);
            tg_fail(TG_ERR_NOMEM, "%s: out of memory", name);
            return NULL;
        }
        double *blk = acc + inner;
        TG_FLOAT_SWITCH(a->dtype, {
            const T *x = a->data;
            T *y = out->data;
            for (int64_t o = 0; o < outer; o++) {
                const T *xo = x + o * len * inner;
                for (int64_t i = 0; i < inner; i++) acc[i] = 0;
                for (int64_t l0 = 0; l0 < len; l0 += ROW_BLOCK) {
                    int64_t l1 = len - l0 < ROW_BLOCK ? len : l0 + ROW_BLOCK;
                    for (int64_t i = 0; i < inner; i++) blk[i] = 0;
                    for (int64_t l = l0; l < l1; l++)
                        for (int64_t i = 0; i < inner; i++) blk[i] += xo[l * inner + i];
                    for (int64_t i = 0; i < inner; i++) acc[i] += blk[i];
                }
                T *yo = y + o * inner;
                for (int64_t i = 0; i < inner; i++) yo[i] = (T)(is_mean ? acc[i] / scale_count : acc[i]);
            }
        });
        tg_free(acc);
    }
    if (tg_should_record(a, NULL, NULL)) {
        tg_node *n = tg_record(out, op, a, NULL, NULL);
        if (!n) {
            tg_tensor_release(out);
            return NULL;
        }
        n->iparam[0] = all_dims;
        n->iparam[1] = dim;
        n->iparam[2] = keepdim;
    }
    return out;
}

tg_tensor *tg_sum(tg_tensor *a, int all_dims, int dim, int keepdim) {
    if (a && (a->dtype == TG_INT64 || a->dtype == TG_BOOL)) return tg_int_sum(a, all_dims, dim, keepdim);
    return reduce_forward(TG_OP_SUM, a, all_dims, dim, keepdim);
}
tg_tensor *tg_mean(tg_tensor *a, int all_dims, int dim, int keepdim) {
    return reduce_forward(TG_OP_MEAN, a, all_dims, dim, keepdim);
}

/* gx[o, l, i] += gy[o, i] (/ len for mean). */
tg_status tg_reduce_backward(tg_node *n) {
    void *gx_raw;
    if (tg_grad_slot(n, 0, &gx_raw)) return TG_ERR_NOMEM;
    tg_tensor *a = n->inputs[0];
    if (!gx_raw || !a->numel) return TG_OK;
    int64_t outer, len, inner;
    if (n->iparam[0]) {
        outer = 1;
        len = a->numel;
        inner = 1;
    } else {
        tg_split_dims(a, n->iparam[1], &outer, &len, &inner);
    }
    int is_mean = n->op == TG_OP_MEAN;
    TG_FLOAT_SWITCH(a->dtype, {
        const T *g = n->grad->data;
        T *gx = gx_raw;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t l = 0; l < len; l++)
                for (int64_t i = 0; i < inner; i++) {
                    T v = g[o * inner + i];
                    gx[(o * len + l) * inner + i] += is_mean ? v / (T)len : v;
                }
    });
    return TG_OK;
}

/* ------------------------------------------------------------------ rows (legacy backward) */

const tg_op_info tg_row_sum = {.name = "sum", .backward = tg_reduce_backward, .saves = 0};
const tg_op_info tg_row_mean = {.name = "mean", .backward = tg_reduce_backward, .saves = 0};
