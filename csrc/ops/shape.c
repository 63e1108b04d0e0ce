/* ops/shape.c — reshape (a view on the same storage) and transpose (a copy), as rows.
 * Both take any dtype; int64 and bool tensors never require grad, so they are never
 * recorded. */
#include "../internal.h"

#include <string.h>

/* ------------------------------------------------------------------ reshape */

/* The requested shape comes in args->out (ndim in iparam[0]; the shape is copied there
 * only when ndim is valid); check validates it against the input and sets the dtype. */
static tg_status reshape_check(tg_op_args *args) {
    const tg_meta *a = &args->in[0];
    int ndim = args->iparam[0];
    if (ndim < 0 || ndim > TG_MAX_DIMS)
        return tg_fail(TG_ERR_SHAPE, "reshape: ndim must be in [0, %d], got %d", TG_MAX_DIMS, ndim);
    const int64_t *shape = args->out.shape;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] && numel > INT64_MAX / shape[d])) {
            numel = -1;
            break;
        }
        numel *= shape[d];
    }
    if (numel != a->numel) {
        char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
        return tg_fail(TG_ERR_SHAPE, "reshape: shape %s is invalid for input of shape %s (%lld elements)",
                       tg_shape_str(ndim, shape, b1, sizeof b1),
                       tg_shape_str(a->ndim, a->shape, b2, sizeof b2), (long long)a->numel);
    }
    int64_t out_shape[TG_MAX_DIMS];
    memcpy(out_shape, shape, sizeof out_shape);
    tg_meta_set(&args->out, a->dtype, ndim, out_shape);
    args->offset = 0;
    return TG_OK;
}

const tg_op_info tg_row_reshape = {.name = "reshape",
                                   .saves = 0,
                                   .check = reshape_check,
                                   .forward = NULL, /* a view: tg_apply makes it */
                                   .backward_kernel = tg_view_backward,
                                   .flags = TG_ROW_VIEW};

tg_tensor *tg_reshape(tg_tensor *a, int ndim, const int64_t *shape) {
    tg_op_args args = {.op = TG_OP_RESHAPE, .n_in = 1, .iparam = {ndim}};
    if (ndim >= 0 && ndim <= TG_MAX_DIMS)
        for (int d = 0; d < ndim; d++) args.out.shape[d] = shape[d];
    return tg_apply(&args, &a);
}

/* ------------------------------------------------------------------ transpose */

/* For each element of the swapped-shape output (row-major), BODY runs with io its flat
 * index and ii the flat index of the same element in the input. */
#define TRANSPOSED_LOOP(in_shape, ndim, d0, d1, ...)                                       \
    do {                                                                                   \
        int64_t in_strides_[TG_MAX_DIMS] = {0}, out_shape_[TG_MAX_DIMS], st_[TG_MAX_DIMS];     \
        int64_t s_ = 1, total_ = 1;                                                        \
        for (int d_ = (ndim) - 1; d_ >= 0; d_--) {                                         \
            in_strides_[d_] = s_;                                                          \
            s_ *= (in_shape)[d_];                                                          \
        }                                                                                  \
        for (int d_ = 0; d_ < (ndim); d_++) {                                              \
            out_shape_[d_] = (in_shape)[d_];                                               \
            st_[d_] = in_strides_[d_];                                                     \
        }                                                                                  \
        out_shape_[d0] = (in_shape)[d1];                                                   \
        out_shape_[d1] = (in_shape)[d0];                                                   \
        st_[d0] = in_strides_[d1];                                                         \
        st_[d1] = in_strides_[d0];                                                         \
        for (int d_ = 0; d_ < (ndim); d_++) total_ *= out_shape_[d_];                      \
        int64_t idx_[TG_MAX_DIMS] = {0}, ii = 0;                                           \
        for (int64_t io = 0; io < total_; io++) {                                          \
            __VA_ARGS__                                                                           \
            for (int d_ = (ndim) - 1; d_ >= 0; d_--) {                                     \
                idx_[d_]++;                                                                \
                ii += st_[d_];                                                             \
                if (idx_[d_] < out_shape_[d_]) break;                                      \
                ii -= st_[d_] * out_shape_[d_];                                            \
                idx_[d_] = 0;                                                              \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* iparam = {dim0, dim1} (normalised here). */
static tg_status transpose_check(tg_op_args *args) {
    const tg_meta *a = &args->in[0];
    int dim0 = args->iparam[0], dim1 = args->iparam[1];
    tg_status st = tg_normalize_dim("transpose", a->ndim, &dim0);
    if (!st) st = tg_normalize_dim("transpose", a->ndim, &dim1);
    if (st) return st;
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    if (a->ndim) {
        shape[dim0] = a->shape[dim1];
        shape[dim1] = a->shape[dim0];
    }
    tg_meta_set(&args->out, a->dtype, a->ndim, shape);
    args->iparam[0] = dim0;
    args->iparam[1] = dim1;
    return TG_OK;
}

static void transpose_forward(const tg_op_args *args, const tg_fwd_bufs *b) {
    const tg_meta *a = &args->in[0];
    const int dim0 = args->iparam[0], dim1 = args->iparam[1];
    if (a->ndim == 0) {
        memcpy(b->out, b->in[0], tg_dtype_size(a->dtype));
    } else if (a->dtype == TG_INT64) {
        const int64_t *x = b->in[0];
        int64_t *y = b->out;
        TRANSPOSED_LOOP(a->shape, a->ndim, dim0, dim1, { y[io] = x[ii]; });
    } else if (a->dtype == TG_BOOL) { /* 1 byte: not TG_FLOAT_SWITCH's double */
        const uint8_t *x = b->in[0];
        uint8_t *y = b->out;
        TRANSPOSED_LOOP(a->shape, a->ndim, dim0, dim1, { y[io] = x[ii]; });
    } else {
        TG_FLOAT_SWITCH(a->dtype, {
            const T *x = b->in[0];
            T *y = b->out;
            TRANSPOSED_LOOP(a->shape, a->ndim, dim0, dim1, { y[io] = x[ii]; });
        });
    }
}

/* gx = transpose(gy): walk the output order and scatter back. */
static void transpose_backward(const tg_op_args *args, const tg_bwd_bufs *b) {
    const tg_meta *a = &args->in[0];
    TG_FLOAT_SWITCH(a->dtype, {
        const T *g = b->gout;
        T *gx = b->gin[0];
        if (a->ndim == 0) gx[0] += g[0];
        else TRANSPOSED_LOOP(a->shape, a->ndim, args->iparam[0], args->iparam[1], { gx[ii] += g[io]; });
    });
}

const tg_op_info tg_row_transpose = {.name = "transpose",
                                     .saves = 0,
                                     .check = transpose_check,
                                     .forward = transpose_forward,
                                     .backward_kernel = transpose_backward};

tg_tensor *tg_transpose(tg_tensor *a, int dim0, int dim1) {
    tg_op_args args = {.op = TG_OP_TRANSPOSE, .n_in = 1, .iparam = {dim0, dim1}};
    return tg_apply(&args, &a);
}
