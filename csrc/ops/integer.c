/* ops/integer.c — reductions that give or take integers, never recorded (integers carry
 * no gradient): the sum of int64 and bool tensors (int64 wraps on overflow, as PyTorch's
 * does; bool counts the true elements), argmax and argmin. */
#include "../internal.h"

tg_tensor *tg_int_sum(tg_tensor *a, int all_dims, int dim, int keepdim) {
    if (tg_capture_guard("sum of an integer tensor", a, NULL)) return NULL;
    if (!all_dims && tg_normalize_dim("sum", a->ndim, &dim)) return NULL;
    int64_t shape[TG_MAX_DIMS] = {0};
    int ndim = tg_reduced_shape(a, all_dims, dim, keepdim, shape);
    tg_tensor *out = tg_tensor_new(TG_INT64, ndim, shape, 1);
    if (!out) return NULL;
    int64_t outer = 1, len = a->numel, inner = 1;
    if (!all_dims) tg_split_dims(a, dim, &outer, &len, &inner);
    uint64_t *y = out->data; /* unsigned: wrapping is defined */
    if (outer * inner == 0) return out;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t l = 0; l < len; l++) {
            int64_t base = (o * len + l) * inner;
            if (a->dtype == TG_BOOL) {
                const unsigned char *x = (const unsigned char *)a->data + base;
                for (int64_t i = 0; i < inner; i++) y[o * inner + i] += x[i] != 0;
            } else {
                const int64_t *x = (const int64_t *)a->data + base;
                for (int64_t i = 0; i < inner; i++) y[o * inner + i] += (uint64_t)x[i];
            }
        }
    return out;
}

/* Index of the largest (smallest) element along dim, or of the flattened tensor; ties
 * give the first index, NaN counts as larger (and smaller) than everything, as in
 * PyTorch. An empty reduction is an error (there is no index to give). */
static tg_tensor *arg_extreme(tg_tensor *a, int all_dims, int dim, int keepdim, int want_max) {
    const char *name = want_max ? "argmax" : "argmin";
    if (tg_capture_guard(name, a, NULL)) return NULL;
    if (!a) {
        tg_fail(TG_ERR_ARG, "%s: got a NULL tensor", name);
        return NULL;
    }
    if (a->dtype == TG_BOOL) {
        tg_fail(TG_ERR_DTYPE, "%s: not supported for bool tensors", name);
        return NULL;
    }
    if (!all_dims && tg_normalize_dim(name, a->ndim, &dim)) return NULL;
    int64_t shape[TG_MAX_DIMS] = {0};
    int ndim = tg_reduced_shape(a, all_dims, dim, keepdim, shape);
    int64_t outer = 1, len = a->numel, inner = 1;
    if (!all_dims) tg_split_dims(a, dim, &outer, &len, &inner);
    if (len == 0) {
        tg_fail(TG_ERR_INDEX, "%s: cannot take the %s of an empty dimension", name,
                want_max ? "argmax" : "argmin");
        return NULL;
    }
    tg_tensor *out = tg_tensor_new(TG_INT64, ndim, shape, 0);
    if (!out) return NULL;
    int64_t *y = out->data;
#define ARG_LOOP(T)                                                                        \
    do {                                                                                   \
        const T *x = a->data;                                                              \
        for (int64_t o = 0; o < outer; o++)                                                \
            for (int64_t i = 0; i < inner; i++) {                                          \
                const T *p = x + o * len * inner + i;                                      \
                int64_t best = 0;                                                          \
                T bv = p[0];                                                               \
                for (int64_t l = 1; l < len && bv == bv; l++) {                            \
                    T v = p[l * inner];                                                    \
                    if (v != v || (want_max ? v > bv : v < bv)) {                          \
                        best = l;                                                          \
                        bv = v;                                                            \
                    }                                                                      \
                }                                                                          \
                y[o * inner + i] = best;                                                   \
            }                                                                              \
    } while (0)
    switch (a->dtype) {
    case TG_FLOAT32: ARG_LOOP(float); break;
    case TG_FLOAT64: ARG_LOOP(double); break;
    default: ARG_LOOP(int64_t); break;
    }
#undef ARG_LOOP
    return out;
}

tg_tensor *tg_argmax(tg_tensor *a, int all_dims, int dim, int keepdim) {
    return arg_extreme(a, all_dims, dim, keepdim, 1);
}
tg_tensor *tg_argmin(tg_tensor *a, int all_dims, int dim, int keepdim) {
    return arg_extreme(a, all_dims, dim, keepdim, 0);
}
