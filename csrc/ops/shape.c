/* ops/shape.c — reshape (a view on the same storage) and transpose (a copy). */
#include "../internal.h"

#include <string.h>

tg_tensor *tg_reshape(tg_tensor *a, int ndim, const int64_t *shape) {
    if (!a) {
        tg_fail(TG_ERR_ARG, "reshape: got a NULL tensor");
        return NULL;
    }
    if (ndim < 0 || ndim > TG_MAX_DIMS) {
        tg_fail(TG_ERR_SHAPE, "reshape: ndim must be in [0, %d], got %d", TG_MAX_DIMS, ndim);
        return NULL;
    }
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
        tg_fail(TG_ERR_SHAPE, "reshape: shape %s is invalid for input of shape %s (%lld elements)",
                tg_shape_str(ndim, shape, b1, sizeof b1), tg_shape_str(a->ndim, a->shape, b2, sizeof b2),
                (long long)a->numel);
        return NULL;
    }
    tg_tensor *out = tg_tensor_view(a, ndim, shape);
    if (!out) return NULL;
    if (a->dtype != TG_INT64 && tg_should_record(a, NULL, NULL) &&
        !tg_record(out, TG_OP_RESHAPE, a, NULL, NULL)) {
        tg_tensor_release(out);
        return NULL;
    }
    return out;
}

/* The gradient has the same elements in the same order. */
tg_status tg_reshape_backward(tg_node *n) {
    void *gx_raw;
    if (tg_grad_slot(n, 0, &gx_raw)) return TG_ERR_NOMEM;
    if (!gx_raw) return TG_OK;
    TG_FLOAT_SWITCH(n->inputs[0]->dtype, {
        const T *g = n->grad->data;
        T *gx = gx_raw;
        for (int64_t i = 0; i < n->grad->numel; i++) gx[i] += g[i];
    });
    return TG_OK;
}

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

tg_tensor *tg_transpose(tg_tensor *a, int dim0, int dim1) {
    if (!a) {
        tg_fail(TG_ERR_ARG, "transpose: got a NULL tensor");
        return NULL;
    }
    if (tg_normalize_dim("transpose", a->ndim, &dim0) || tg_normalize_dim("transpose", a->ndim, &dim1))
        return NULL;
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    if (a->ndim) {
        shape[dim0] = a->shape[dim1];
        shape[dim1] = a->shape[dim0];
    }
    tg_tensor *out = tg_tensor_new(a->dtype, a->ndim, shape, 0);
    if (!out) return NULL;
    if (a->ndim == 0) {
        memcpy(out->data, a->data, tg_dtype_size(a->dtype));
    } else if (a->dtype == TG_INT64) {
        const int64_t *x = a->data;
        int64_t *y = out->data;
        TRANSPOSED_LOOP(a->shape, a->ndim, dim0, dim1, { y[io] = x[ii]; });
    } else if (a->dtype == TG_BOOL) { /* 1 byte: not TG_FLOAT_SWITCH's double */
        const uint8_t *x = a->data;
        uint8_t *y = out->data;
        TRANSPOSED_LOOP(a->shape, a->ndim, dim0, dim1, { y[io] = x[ii]; });
    } else {
        TG_FLOAT_SWITCH(a->dtype, {
            const T *x = a->data;
            T *y = out->data;
            TRANSPOSED_LOOP(a->shape, a->ndim, dim0, dim1, { y[io] = x[ii]; });
        });
    }
    if (a->dtype != TG_INT64 && tg_should_record(a, NULL, NULL)) {
        tg_node *n = tg_record(out, TG_OP_TRANSPOSE, a, NULL, NULL);
        if (!n) {
            tg_tensor_release(out);
            return NULL;
        }
        n->iparam[0] = dim0;
        n->iparam[1] = dim1;
    }
    return out;
}

/* gx = transpose(gy): walk the output order and scatter back. */
tg_status tg_transpose_backward(tg_node *n) {
    void *gx_raw;
    if (tg_grad_slot(n, 0, &gx_raw)) return TG_ERR_NOMEM;
    if (!gx_raw) return TG_OK;
    tg_tensor *a = n->inputs[0];
    TG_FLOAT_SWITCH(a->dtype, {
        const T *g = n->grad->data;
        T *gx = gx_raw;
        if (a->ndim == 0) gx[0] += g[0];
        else TRANSPOSED_LOOP(a->shape, a->ndim, n->iparam[0], n->iparam[1], { gx[ii] += g[io]; });
    });
    return TG_OK;
}

/* ------------------------------------------------------------------ rows (legacy backward) */

const tg_op_info tg_row_reshape = {.name = "reshape", .backward = tg_reshape_backward, .saves = 0};
const tg_op_info tg_row_transpose = {.name = "transpose", .backward = tg_transpose_backward, .saves = 0};
