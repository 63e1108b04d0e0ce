/* ops/integer.c — reductions that give or take integers, rows without a backward kernel
 * (integers carry no gradient: never recorded, but replayed in a captured step): the
 * sum of int64 and bool tensors (int64 wraps on overflow, as PyTorch's does; bool counts
 * the true elements), argmax and argmin. */
#include "../internal.h"

#include <string.h>

/* ------------------------------------------------------------------ int_sum */

static tg_status int_sum_check(tg_op_args *args) {
    return tg_reduction_meta("sum", args, TG_INT64);
}

static void int_sum_forward(const tg_op_args *args, const tg_fwd_bufs *b) {
    const int64_t outer = args->dims[0], len = args->dims[1], inner = args->dims[2];
    uint64_t *y = b->out; /* unsigned: wrapping is defined */
    if (args->out.numel) memset(y, 0, (size_t)args->out.numel * sizeof *y);
    if (outer * inner == 0) return;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t l = 0; l < len; l++) {
            int64_t base = (o * len + l) * inner;
            if (args->in[0].dtype == TG_BOOL) {
                const unsigned char *x = (const unsigned char *)b->in[0] + base;
                for (int64_t i = 0; i < inner; i++) y[o * inner + i] += x[i] != 0;
            } else {
                const int64_t *x = (const int64_t *)b->in[0] + base;
                for (int64_t i = 0; i < inner; i++) y[o * inner + i] += (uint64_t)x[i];
            }
        }
}

const tg_op_info tg_row_int_sum = {.name = "int_sum",
                                   .saves = 0,
                                   .check = int_sum_check,
                                   .forward = int_sum_forward,
                                   .backward_kernel = NULL};

tg_tensor *tg_int_sum(tg_tensor *a, int all_dims, int dim, int keepdim) {
    tg_op_args args = {.op = TG_OP_INT_SUM, .n_in = 1, .iparam = {all_dims, dim, keepdim}};
    return tg_apply(&args, &a);
}

/* ------------------------------------------------------------------ argmax, argmin */

/* Index of the largest (smallest) element along dim, or of the flattened tensor; ties
 * give the first index, NaN counts as larger (and smaller) than everything, as in
 * PyTorch. An empty reduction is an error (there is no index to give). */
static tg_status arg_check(tg_op_args *args) {
    int want_max = args->op == TG_OP_ARGMAX;
    const char *name = want_max ? "argmax" : "argmin";
    if (args->in[0].dtype == TG_BOOL)
        return tg_fail(TG_ERR_DTYPE, "%s: not supported for bool tensors", name);
    tg_status st = tg_reduction_meta(name, args, TG_INT64);
    if (st) return st;
    if (args->dims[1] == 0)
        return tg_fail(TG_ERR_INDEX, "%s: cannot take the %s of an empty dimension", name, name);
    return TG_OK;
}

static void arg_forward(const tg_op_args *args, const tg_fwd_bufs *b) {
    const int want_max = args->op == TG_OP_ARGMAX;
    const int64_t outer = args->dims[0], len = args->dims[1], inner = args->dims[2];
    int64_t *y = b->out;
#define ARG_LOOP(T)                                                                        \
    do {                                                                                   \
        const T *x = b->in[0];                                                             \
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
    switch (args->in[0].dtype) {
    case TG_FLOAT32: ARG_LOOP(float); break;
    case TG_FLOAT64: ARG_LOOP(double); break;
    default: ARG_LOOP(int64_t); break;
    }
#undef ARG_LOOP
}

const tg_op_info tg_row_argmax = {.name = "argmax",
                                  .saves = 0,
                                  .check = arg_check,
                                  .forward = arg_forward,
                                  .backward_kernel = NULL};
const tg_op_info tg_row_argmin = {.name = "argmin",
                                  .saves = 0,
                                  .check = arg_check,
                                  .forward = arg_forward,
                                  .backward_kernel = NULL};

static tg_tensor *arg_extreme(tg_op op, tg_tensor *a, int all_dims, int dim, int keepdim) {
    tg_op_args args = {.op = op, .n_in = 1, .iparam = {all_dims, dim, keepdim}};
    return tg_apply(&args, &a);
}

tg_tensor *tg_argmax(tg_tensor *a, int all_dims, int dim, int keepdim) {
    return arg_extreme(TG_OP_ARGMAX, a, all_dims, dim, keepdim);
}
tg_tensor *tg_argmin(tg_tensor *a, int all_dims, int dim, int keepdim) {
    return arg_extreme(TG_OP_ARGMIN, a, all_dims, dim, keepdim);
}
