/* ops/reduce.c — sum and mean, over all elements or along one dim, as rows. */
#include "../internal.h"

#include <math.h>

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

tg_status tg_reduction_meta(const char *name, tg_op_args *args, tg_dtype out_dtype) {
    const tg_meta *a = &args->in[0];
    int all_dims = args->iparam[0], dim = args->iparam[1], keepdim = args->iparam[2];
    tg_status st;
    if (!all_dims && (st = tg_normalize_dim(name, a->ndim, &dim))) return st;
    args->iparam[1] = dim;
    int64_t shape[TG_MAX_DIMS] = {0};
    int ndim = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (!(all_dims || d == dim)) shape[ndim++] = a->shape[d];
        else if (keepdim) shape[ndim++] = 1;
    }
    tg_meta_set(&args->out, out_dtype, ndim, shape);
    if (all_dims) {
        args->dims[0] = 1;
        args->dims[1] = a->numel;
        args->dims[2] = 1;
    } else {
        tg_split_dims(a, dim, &args->dims[0], &args->dims[1], &args->dims[2]);
    }
    return TG_OK;
}

/* Blocks of rows summed apart (see reduce_forward). */
enum { ROW_BLOCK = 64 };

/* iparam = {all_dims, dim, keepdim} (dim normalised here); dims = {outer, len, inner}:
 * the input viewed as (outer, len, inner) around the reduced dim(s). fwd_scratch: the
 * two double rows of the strided sum (inner != 1). */
static tg_status reduce_check(tg_op_args *args) {
    const char *name = tg_op_rows[args->op]->name;
    const tg_meta *a = &args->in[0];
    tg_status st = tg_check_float_meta(name, a);
    if (!st) st = tg_reduction_meta(name, args, a->dtype);
    if (st) return st;
    const int64_t inner = args->dims[2];
    args->fwd_scratch = a->numel && inner != 1 ? (size_t)inner * 2 * sizeof(double) : 0;
    return TG_OK;
}

static void reduce_forward(const tg_op_args *args, const tg_fwd_bufs *b) {
    const int64_t outer = args->dims[0], len = args->dims[1], inner = args->dims[2];
    const tg_dtype dt = args->out.dtype;
    int is_mean = args->op == TG_OP_MEAN;
    /* mean of an empty set is NaN, as in PyTorch (0/0). */
    double scale_count = (double)len;
    if (args->in[0].numel == 0) {
        /* Every output element reduces an empty set. Never loop over the empty input's
         * dims: zeros(2**40, 0).sum(0) has 2^40 rows of nothing. */
        TG_FLOAT_SWITCH(dt, {
            T *y = b->out;
            for (int64_t i = 0; i < args->out.numel; i++) y[i] = is_mean ? (T)NAN : (T)0;
        });
    } else if (inner == 1) {
        for (int64_t o = 0; o < outer; o++) {
            double s = dt == TG_FLOAT32 ? pairwise_sum_f32((const float *)b->in[0] + o * len, len, 1)
                                        : pairwise_sum_f64((const double *)b->in[0] + o * len, len, 1);
            if (dt == TG_FLOAT32) {
                float v = (float)s;
                ((float *)b->out)[o] = is_mean ? (float)(s / scale_count) : v;
            } else {
                ((double *)b->out)[o] = is_mean ? s / scale_count : s;
            }
        }
    } else {
        /* Sum the rows of each (len, inner) slab in double, in blocks of ROW_BLOCK rows
         * (a block's partial sums are added to the total): float32 sums keep full
         * precision (a float accumulator stalls: 2e5 rows of 0.1 summed to 19959.5) and
         * the error of float64 sums grows with len / ROW_BLOCK + ROW_BLOCK, not len.
         * Rows are read contiguously; the order is fixed, so results are deterministic.
         * acc and blk: the scratch, inner doubles each. */
        double *acc = b->scratch;
        double *blk = acc + inner;
        TG_FLOAT_SWITCH(dt, {
            const T *x = b->in[0];
            T *y = b->out;
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
    }
}

/* gx[o, l, i] += gy[o, i] (/ len for mean). */
static void reduce_backward(const tg_op_args *args, const tg_bwd_bufs *b) {
    if (!args->in[0].numel) return;
    const int64_t outer = args->dims[0], len = args->dims[1], inner = args->dims[2];
    int is_mean = args->op == TG_OP_MEAN;
    TG_FLOAT_SWITCH(args->out.dtype, {
        const T *g = b->gout;
        T *gx = b->gin[0];
        for (int64_t o = 0; o < outer; o++)
            for (int64_t l = 0; l < len; l++)
                for (int64_t i = 0; i < inner; i++) {
                    T v = g[o * inner + i];
                    gx[(o * len + l) * inner + i] += is_mean ? v / (T)len : v;
                }
    });
}

const tg_op_info tg_row_sum = {.name = "sum",
                               .saves = 0,
                               .check = reduce_check,
                               .forward = reduce_forward,
                               .backward_kernel = reduce_backward};
const tg_op_info tg_row_mean = {.name = "mean",
                                .saves = 0,
                                .check = reduce_check,
                                .forward = reduce_forward,
                                .backward_kernel = reduce_backward};

static tg_tensor *reduce(tg_op op, tg_tensor *a, int all_dims, int dim, int keepdim) {
    tg_op_args args = {.op = op, .n_in = 1, .iparam = {all_dims, dim, keepdim}};
    return tg_apply(&args, &a);
}

/* int64 and bool sums are not rows (integers carry no gradient): ops/integer.c. */
tg_tensor *tg_sum(tg_tensor *a, int all_dims, int dim, int keepdim) {
    if (a && (a->dtype == TG_INT64 || a->dtype == TG_BOOL)) return tg_int_sum(a, all_dims, dim, keepdim);
    return reduce(TG_OP_SUM, a, all_dims, dim, keepdim);
}
tg_tensor *tg_mean(tg_tensor *a, int all_dims, int dim, int keepdim) {
    return reduce(TG_OP_MEAN, a, all_dims, dim, keepdim);
}
