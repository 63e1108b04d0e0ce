/* ops/integer.c — reductions of int64 and bool tensors (never recorded: integers carry no
 * gradient). A sum of int64 wraps on overflow, as PyTorch's does; a sum of bool counts
 * the true elements. Both give int64. */
#include "../internal.h"

tg_tensor *tg_int_sum(tg_tensor *a, int all_dims, int dim, int keepdim) {
    if (!all_dims && tg_normalize_dim("sum", a->ndim, &dim)) return NULL;
    int64_t shape[TG_MAX_DIMS] = {0};
    int ndim = 0;
    for (int d = 0; d < a->ndim; d++) {
        int reduced = all_dims || d == dim;
        if (!reduced) shape[ndim++] = a->shape[d];
        else if (keepdim) shape[ndim++] = 1;
    }
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
