/* ops/views.c — views along dim 0 (t[i], t[a:b]), in-place copies, dtype conversion and
 * comparisons. All but the in-place copy are rows; conversions to or from int64 / bool
 * and the comparisons carry no gradient (rows without a backward kernel). */
#include "../internal.h"
#include "broadcast.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ views along dim 0 */

/* t[i] (select) and t[a:b] (narrow) are one row, "select": a view of input 0 at
 * args.offset (both are recorded as select, as before). The public function gives the
 * request: iparam[0] = 0 for select, 1 for narrow; dims[0] = the index (select) or the
 * start (narrow), dims[1] = the length (narrow). check validates it, normalises a
 * negative index into dims[0] and sets the output's meta and offset. Any dtype: int64
 * and bool views are never recorded (they never require grad). */
static tg_status select_check(tg_op_args *args) {
    const tg_meta *a = &args->in[0];
    int narrow = args->iparam[0];
    if (a->ndim == 0) {
        if (narrow) return tg_fail(TG_ERR_INDEX, "narrow: a 0-d tensor has no dim to slice");
        return tg_fail(TG_ERR_INDEX, "select: invalid index of a 0-d tensor (it has no dim to index)");
    }
    int64_t n = a->shape[0];
    int64_t row = n ? a->numel / n : 0;
    if (narrow) {
        int64_t start = args->dims[0], length = args->dims[1];
        if (start < 0 || length < 0 || start > n || length > n - start)
            return tg_fail(TG_ERR_INDEX, "narrow: rows [%lld, %lld + %lld) are out of range for "
                                         "dimension 0 with size %lld", (long long)start,
                           (long long)start, (long long)length, (long long)n);
        int64_t shape[TG_MAX_DIMS];
        memcpy(shape, a->shape, sizeof shape);
        shape[0] = length;
        tg_meta_set(&args->out, a->dtype, a->ndim, shape);
        args->offset = start * row;
        return TG_OK;
    }
    int64_t index = args->dims[0];
    if (index < -n || index >= n) {
        char buf[TG_SHAPE_BUF];
        return tg_fail(TG_ERR_INDEX, "index %lld is out of bounds for dimension 0 with size %lld "
                                     "(shape %s)", (long long)index, (long long)n,
                       tg_shape_str(a->ndim, a->shape, buf, sizeof buf));
    }
    if (index < 0) index += n;
    args->dims[0] = index;
    tg_meta_set(&args->out, a->dtype, a->ndim - 1, a->shape + 1);
    args->offset = index * row;
    return TG_OK;
}

/* The backward of every view (select and narrow here, reshape in shape.c): the output's
 * gradient, element by element, added into the input's at the view's element offset. */
void tg_view_backward(const tg_op_args *args, const tg_bwd_bufs *b) {
    TG_FLOAT_SWITCH(args->out.dtype, {
        const T *g = b->gout;
        T *gx = (T *)b->gin[0] + args->offset;
        for (int64_t i = 0; i < args->out.numel; i++) gx[i] += g[i];
    });
}

const tg_op_info tg_row_select = {.name = "select",
                                  .saves = 0,
                                  .check = select_check,
                                  .forward = NULL, /* a view: tg_apply makes it */
                                  .backward_kernel = tg_view_backward,
                                  .flags = TG_ROW_VIEW};

tg_tensor *tg_select(tg_tensor *a, int64_t index) {
    tg_op_args args = {.op = TG_OP_SELECT, .n_in = 1, .iparam = {0}, .dims = {index}};
    return tg_apply(&args, &a);
}

tg_tensor *tg_narrow(tg_tensor *a, int64_t start, int64_t length) {
    if (!a) { /* the row's name is select's */
        tg_fail(TG_ERR_ARG, "narrow: got a NULL tensor");
        return NULL;
    }
    tg_op_args args = {.op = TG_OP_SELECT, .n_in = 1, .iparam = {1}, .dims = {start, length}};
    return tg_apply(&args, &a);
}

/* ------------------------------------------------------------------ dtype conversion */

/* double -> int64 with no undefined behaviour: truncation toward zero, and INT64_MIN for
 * NaN and for values outside int64's range (x86's conversion result, so PyTorch's). */
static inline int64_t to_int64(double v) {
    if (v >= -9223372036854775808.0 && v < 9223372036854775808.0) return (int64_t)v;
    return INT64_MIN;
}

/* Element i of src (any dtype) as the destination's type. */
#define LOAD_AS(DT, SRC, I, OUT_T, OUT)                                                    \
    do {                                                                                   \
        switch (DT) {                                                                      \
        case TG_FLOAT32: OUT = CONVERT_##OUT_T((double)((const float *)(SRC))[I]); break;  \
        case TG_FLOAT64: OUT = CONVERT_##OUT_T(((const double *)(SRC))[I]); break;         \
        case TG_INT64: OUT = CONVERT_I_##OUT_T(((const int64_t *)(SRC))[I]); break;        \
        default: OUT = CONVERT_I_##OUT_T(((const unsigned char *)(SRC))[I]); break;        \
        }                                                                                  \
    } while (0)
#define CONVERT_f32(v) ((float)(v))
#define CONVERT_f64(v) ((double)(v))
#define CONVERT_i64(v) to_int64(v)
#define CONVERT_b(v) ((unsigned char)((v) != 0))
#define CONVERT_I_f32(v) ((float)(v))
#define CONVERT_I_f64(v) ((double)(v))
#define CONVERT_I_i64(v) ((int64_t)(v))
#define CONVERT_I_b(v) ((unsigned char)((v) != 0))

/* dst[i] = convert(src[map(i)]) for the n elements of dst (dtype dd), where map is the
 * identity (bc == NULL) or the broadcast index of src (dtype sd) into dst's shape. */
static void convert_into(tg_dtype dd, void *dst, int64_t n, tg_dtype sd, const void *src_data,
                         const broadcast *bc) {
#define CONVERT_LOOP(OUT_CT, OUT_T)                                                        \
    do {                                                                                   \
        OUT_CT *z = dst;                                                                   \
        if (!bc) {                                                                         \
            for (int64_t i = 0; i < n; i++) LOAD_AS(sd, src_data, i, OUT_T, z[i]);         \
        } else {                                                                           \
            BROADCAST_LOOP(*bc, { (void)ib; LOAD_AS(sd, src_data, ia, OUT_T, z[io]); });    \
        }                                                                                  \
    } while (0)
    switch (dd) {
    case TG_FLOAT32: CONVERT_LOOP(float, f32); break;
    case TG_FLOAT64: CONVERT_LOOP(double, f64); break;
    case TG_INT64: CONVERT_LOOP(int64_t, i64); break;
    default: CONVERT_LOOP(unsigned char, b); break;
    }
#undef CONVERT_LOOP
}

static int is_float(tg_dtype d) { return d == TG_FLOAT32 || d == TG_FLOAT64; }

/* iparam[0] = the target dtype. Any source dtype. */
static tg_status cast_check(tg_op_args *args) {
    tg_dtype dtype = (tg_dtype)args->iparam[0];
    if (!tg_dtype_size(dtype)) return tg_fail(TG_ERR_DTYPE, "to: invalid dtype %d", (int)dtype);
    const tg_meta *a = &args->in[0];
    tg_meta_set(&args->out, dtype, a->ndim, a->shape);
    return TG_OK;
}

static void cast_forward(const tg_op_args *args, const tg_fwd_bufs *b) {
    const tg_meta *a = &args->in[0];
    if (a->dtype == args->out.dtype) {
        if (a->numel) memcpy(b->out, b->in[0], (size_t)a->numel * tg_dtype_size(a->dtype));
    } else {
        convert_into(args->out.dtype, b->out, args->out.numel, a->dtype, b->in[0], NULL);
    }
}

/* The gradient converted back to the input's dtype (float32 <-> float64 only). */
static void cast_backward(const tg_op_args *args, const tg_bwd_bufs *b) {
    const int64_t n = args->out.numel;
    TG_FLOAT_SWITCH(args->in[0].dtype, {
        T *gx = b->gin[0];
        if (args->out.dtype == TG_FLOAT32) {
            const float *gs = b->gout;
            for (int64_t i = 0; i < n; i++) gx[i] += (T)gs[i];
        } else {
            const double *gs = b->gout;
            for (int64_t i = 0; i < n; i++) gx[i] += (T)gs[i];
        }
    });
}

const tg_op_info tg_row_cast = {.name = "to",
                                .saves = 0,
                                .check = cast_check,
                                .forward = cast_forward,
                                .backward_kernel = cast_backward};

/* A conversion to or from int64 / bool carries no gradient: the same check and kernel
 * as "to", in a row without a backward kernel, so it is never recorded (even from a
 * float tensor that requires grad) but runs through tg_apply, so a captured step
 * replays it. */
const tg_op_info tg_row_to_int = {.name = "to_int",
                                  .saves = 0,
                                  .check = cast_check,
                                  .forward = cast_forward,
                                  .backward_kernel = NULL};

/* Between float32 and float64 (either way, or to the same float dtype), "to" is a
 * differentiable row; to or from int64 / bool, the row "to_int". */
tg_tensor *tg_to_dtype(tg_tensor *a, tg_dtype dtype) {
    int differentiable = !a || (is_float(a->dtype) && is_float(dtype));
    tg_op_args args = {.op = differentiable ? TG_OP_CAST : TG_OP_TO_INT, .n_in = 1,
                       .iparam = {(int)dtype}};
    return tg_apply(&args, &a);
}

/* ------------------------------------------------------------------ in-place copy */

tg_status tg_copy_(tg_tensor *dst, const tg_tensor *src) {
    if (!dst || !src) return tg_fail(TG_ERR_ARG, "copy_: got a NULL tensor");
    tg_status guard = tg_capture_guard("an in-place write (copy_, +=, fill_, ...)", dst, src);
    if (guard) return guard;
    if (tg_is_grad_enabled()) {
        if (dst->requires_grad && !dst->node)
            return tg_fail(TG_ERR_STATE,
                           "a leaf tensor that requires grad is being used in an in-place "
                           "operation (update parameters under no_grad(), as an optimizer does)");
        if (dst->requires_grad)
            return tg_fail(TG_ERR_STATE,
                           "in-place operation on a tensor made by '%s', which is part of a graph "
                           "that requires grad: tapegrad does not record in-place ops; write "
                           "y = y + x instead of y += x",
                           tg_op_rows[dst->node->op]->name);
        if (src->requires_grad)
            return tg_fail(TG_ERR_STATE,
                           "in-place operation with an operand that requires grad: tapegrad does "
                           "not record in-place ops, so the gradient would be lost; use an "
                           "out-of-place op (y = y + x) or detach() the operand");
    }
    /* src must broadcast to dst's shape exactly (operand a is src, so the loop's `ia`
     * indexes src and `io` dst). */
    broadcast bc;
    if (broadcast_shapes("copy_", src, dst, &bc) != TG_OK) return TG_ERR_SHAPE;
    if (bc.ndim != dst->ndim || bc.numel != dst->numel ||
        memcmp(bc.shape, dst->shape, (size_t)dst->ndim * sizeof(int64_t)) != 0) {
        char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
        return tg_fail(TG_ERR_SHAPE,
                       "in-place operation: the value of shape %s does not broadcast to the "
                       "destination's shape %s",
                       tg_shape_str(src->ndim, src->shape, b1, sizeof b1),
                       tg_shape_str(dst->ndim, dst->shape, b2, sizeof b2));
    }
    if (!dst->numel) {
        tg_bump_version(dst);
        return TG_OK;
    }
    /* Reading src while writing dst is wrong when they overlap (x.copy_(x[0]), a view of
     * the same storage): read from a snapshot then. */
    size_t src_bytes = (size_t)src->numel * tg_dtype_size(src->dtype);
    const void *src_data = src->data;
    void *snapshot = NULL;
    if (src->storage == dst->storage && src_bytes) {
        snapshot = tg_malloc(src_bytes);
        if (!snapshot) return tg_fail(TG_ERR_NOMEM, "copy_: out of memory");
        memcpy(snapshot, src->data, src_bytes);
        src_data = snapshot;
    }
    if (src->dtype == dst->dtype && src->numel == dst->numel)
        memcpy(dst->data, src_data, src_bytes);
    else
        convert_into(dst->dtype, dst->data, dst->numel, src->dtype, src_data,
                     src->numel == dst->numel ? NULL : &bc);
    tg_free(snapshot);
    tg_bump_version(dst);
    return TG_OK;
}

/* ------------------------------------------------------------------ comparisons */

/* eq, ne, lt, le, gt, ge: six rows sharing one check and one kernel; iparam[0] is the
 * tg_compare_op. Same-dtype operands (any dtype) with numpy broadcasting, a bool output;
 * NaN compares unequal to everything (C's comparisons). No gradient: never recorded. */
static tg_status compare_check(tg_op_args *args) {
    const char *name = tg_op_rows[args->op]->name;
    if (!(args->present & 2u)) return tg_fail(TG_ERR_ARG, "compare: got a NULL tensor");
    const tg_meta *a = &args->in[0], *b = &args->in[1];
    tg_status st = tg_check_same_dtype_meta(name, a, b);
    if (st) return st;
    if ((st = broadcast_metas(name, a, b, &args->bc))) return st;
    tg_meta_set(&args->out, TG_BOOL, args->bc.ndim, args->bc.shape);
    return TG_OK;
}

#define COMPARE_LOOP(T, CMP)                                                               \
    do {                                                                                   \
        const T *x = b->in[0], *y = b->in[1];                                              \
        unsigned char *z = b->out;                                                         \
        if (same) {                                                                        \
            for (int64_t i = 0; i < n; i++) z[i] = (unsigned char)(x[i] CMP y[i]);         \
        } else {                                                                           \
            BROADCAST_LOOP(args->bc, { z[io] = (unsigned char)(x[ia] CMP y[ib]); });        \
        }                                                                                  \
    } while (0)

#define COMPARE_SWITCH(T)                                                                  \
    switch ((tg_compare_op)args->iparam[0]) {                                              \
    case TG_CMP_EQ: COMPARE_LOOP(T, ==); break;                                            \
    case TG_CMP_NE: COMPARE_LOOP(T, !=); break;                                            \
    case TG_CMP_LT: COMPARE_LOOP(T, <); break;                                             \
    case TG_CMP_LE: COMPARE_LOOP(T, <=); break;                                            \
    case TG_CMP_GT: COMPARE_LOOP(T, >); break;                                             \
    default: COMPARE_LOOP(T, >=); break;                                                   \
    }

static void compare_forward(const tg_op_args *args, const tg_fwd_bufs *b) {
    const int64_t n = args->bc.numel;
    const int same = args->in[0].numel == n && args->in[1].numel == n;
    switch (args->in[0].dtype) {
    case TG_FLOAT32: COMPARE_SWITCH(float); break;
    case TG_FLOAT64: COMPARE_SWITCH(double); break;
    case TG_INT64: COMPARE_SWITCH(int64_t); break;
    default: COMPARE_SWITCH(unsigned char); break;
    }
}
#undef COMPARE_SWITCH
#undef COMPARE_LOOP

#define COMPARE_ROW(NAME)                                                                  \
    const tg_op_info tg_row_##NAME = {.name = #NAME,                                       \
                                      .saves = 0,                                          \
                                      .check = compare_check,                              \
                                      .forward = compare_forward,                          \
                                      .backward_kernel = NULL}
COMPARE_ROW(eq);
COMPARE_ROW(ne);
COMPARE_ROW(lt);
COMPARE_ROW(le);
COMPARE_ROW(gt);
COMPARE_ROW(ge);
#undef COMPARE_ROW

tg_tensor *tg_compare(tg_tensor *a, tg_tensor *b, tg_compare_op op) {
    static const tg_op rows[] = {TG_OP_EQ, TG_OP_NE, TG_OP_LT, TG_OP_LE, TG_OP_GT, TG_OP_GE};
    if (!a || !b) {
        tg_fail(TG_ERR_ARG, "compare: got a NULL tensor");
        return NULL;
    }
    if ((int)op < 0 || (int)op > TG_CMP_GE) {
        tg_fail(TG_ERR_ARG, "compare: invalid comparison %d", (int)op);
        return NULL;
    }
    tg_op_args args = {.op = rows[op], .n_in = 2, .iparam = {(int)op}};
    tg_tensor *in[2] = {a, b};
    return tg_apply(&args, in);
}
