/* ops/matmul.c — matmul (1-D and 2-D operands) and the fused linear layer, as rows.
 * Backward uses the gemm kernel's transpose flags: no transposed copies are made, and
 * gradients are accumulated straight into their buffers (accumulate = 1). */
#include "../internal.h"

#include <string.h>

/* ------------------------------------------------------------------ the gemm call
 *
 * The one place where matmul and linear reach the gemm kernel: the workspace-taking gemm
 * (tg_gemm_ws_*), its packing workspace being the rows' scratch. The check sizes it for
 * the calling thread's thread count, kept in args->nthreads; a kernel runs with at most
 * that many threads (a replayed program may run on a thread with another setting; the
 * result does not depend on the thread count). */

static size_t gemm_scratch(tg_dtype dt, int64_t M, int64_t N, int64_t K, int ta, int tb, int nt) {
    return dt == TG_FLOAT32 ? tg_gemm_workspace_f32(M, N, K, ta, tb, nt)
                            : tg_gemm_workspace_f64(M, N, K, ta, tb, nt);
}

static void gemm(const tg_op_args *args, int64_t M, int64_t N, int64_t K, const void *A,
                 int64_t lda, int ta, const void *B, int64_t ldb, int tb, void *C, int64_t ldc,
                 int acc, void *scratch) {
    int nt = tg_get_nthreads_internal();
    if (nt > args->nthreads) nt = args->nthreads;
    if (args->out.dtype == TG_FLOAT32)
        tg_gemm_ws_f32(M, N, K, A, lda, ta, B, ldb, tb, C, ldc, acc, nt, scratch);
    else
        tg_gemm_ws_f64(M, N, K, A, lda, ta, B, ldb, tb, C, ldc, acc, nt, scratch);
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* ------------------------------------------------------------------ matmul */

/* a (m, k) or (k); b (k, n) or (k). Missing dims are treated as 1 and dropped from the
 * output, as torch.matmul does. dims = {m, k, n}. */
static tg_status matmul_check(tg_op_args *args) {
    const tg_meta *a = &args->in[0], *b = &args->in[1];
    tg_status st = tg_check_float_meta("matmul", a);
    if (!st && !(args->present & 2u)) st = tg_fail(TG_ERR_ARG, "matmul: got a NULL tensor");
    if (!st) st = tg_check_float_meta("matmul", b);
    if (!st) st = tg_check_same_dtype_meta("matmul", a, b);
    if (st) return st;
    char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
    if (a->ndim < 1 || a->ndim > 2 || b->ndim < 1 || b->ndim > 2)
        return tg_fail(TG_ERR_SHAPE,
                       "matmul: only 1-D and 2-D operands are supported, got shapes %s and %s",
                       tg_shape_str(a->ndim, a->shape, b1, sizeof b1),
                       tg_shape_str(b->ndim, b->shape, b2, sizeof b2));
    int64_t m = a->ndim == 2 ? a->shape[0] : 1;
    int64_t k = a->shape[a->ndim - 1];
    int64_t kb = b->shape[0];
    int64_t n = b->ndim == 2 ? b->shape[1] : 1;
    if (k != kb)
        return tg_fail(TG_ERR_SHAPE, "matmul: shapes %s and %s cannot be multiplied (%lld != %lld)",
                       tg_shape_str(a->ndim, a->shape, b1, sizeof b1),
                       tg_shape_str(b->ndim, b->shape, b2, sizeof b2), (long long)k, (long long)kb);
    int ndim = 0;
    int64_t shape[2];
    if (a->ndim == 2) shape[ndim++] = m;
    if (b->ndim == 2) shape[ndim++] = n;
    tg_meta_set(&args->out, a->dtype, ndim, shape);
    args->dims[0] = m;
    args->dims[1] = k;
    args->dims[2] = n;
    tg_dtype dt = a->dtype;
    const int nt = args->nthreads = tg_get_nthreads_internal();
    args->fwd_scratch = gemm_scratch(dt, m, n, k, 0, 0, nt);
    args->bwd_scratch = max_size(gemm_scratch(dt, m, k, n, 0, 1, nt), gemm_scratch(dt, k, n, m, 1, 0, nt));
    return TG_OK;
}

static void matmul_forward(const tg_op_args *args, const tg_fwd_bufs *b) {
    const int64_t m = args->dims[0], k = args->dims[1], n = args->dims[2];
    /* C (m, n) = A (m, k) . B (k, n) */
    gemm(args, m, n, k, b->in[0], k, 0, b->in[1], n, 0, b->out, n, 0, b->scratch);
}

static void matmul_backward(const tg_op_args *args, const tg_bwd_bufs *b) {
    const int64_t m = args->dims[0], k = args->dims[1], n = args->dims[2];
    /* gA (m, k) += G (m, n) . B^T   (B stored (k, n)); = for a fresh slot (b->assign) */
    if (b->gin[0])
        gemm(args, m, k, n, b->gout, n, 0, b->in[1], n, 1, b->gin[0], k, !(b->assign & 1u),
             b->scratch);
    /* gB (k, n) += A^T . G          (A stored (m, k)) */
    if (b->gin[1])
        gemm(args, k, n, m, b->in[0], k, 1, b->gout, n, 0, b->gin[1], n, !(b->assign & 2u),
             b->scratch);
}

const tg_op_info tg_row_matmul = {.name = "matmul",
                                  .saves = TG_SAVES_IN0 | TG_SAVES_IN1,
                                  .flags = TG_ROW_ASSIGN,
                                  .check = matmul_check,
                                  .forward = matmul_forward,
                                  .backward_kernel = matmul_backward};

tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b) {
    tg_op_args args = {.op = TG_OP_MATMUL, .n_in = 2};
    tg_tensor *in[2] = {a, b};
    return tg_apply(&args, in);
}

/* ------------------------------------------------------------------ linear */

/* x (rows, in) or (in); w (out, in); b (out) or absent (input slot 2, present bit 2
 * unset); y (rows, out) or (out). dims = {rows, in, out}. */
static tg_status linear_check(tg_op_args *args) {
    const tg_meta *x = &args->in[0], *w = &args->in[1];
    const tg_meta *b = (args->present & 4u) ? &args->in[2] : NULL;
    tg_status st = tg_check_float_meta("linear", x);
    if (!st && !(args->present & 2u)) st = tg_fail(TG_ERR_ARG, "linear: got a NULL tensor");
    if (!st) st = tg_check_float_meta("linear", w);
    if (!st) st = tg_check_same_dtype_meta("linear", x, w);
    if (!st && b) st = tg_check_float_meta("linear", b);
    if (!st && b) st = tg_check_same_dtype_meta("linear", x, b);
    if (st) return st;
    char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
    if (w->ndim != 2)
        return tg_fail(TG_ERR_SHAPE, "linear: weight must be 2-D (out_features, in_features), got %s",
                       tg_shape_str(w->ndim, w->shape, b1, sizeof b1));
    if (x->ndim < 1 || x->ndim > 2)
        return tg_fail(TG_ERR_SHAPE, "linear: input must be 1-D or 2-D, got %s",
                       tg_shape_str(x->ndim, x->shape, b1, sizeof b1));
    int64_t outf = w->shape[0];
    int64_t in = w->shape[1];
    int64_t rows = x->ndim == 2 ? x->shape[0] : 1;
    if (x->shape[x->ndim - 1] != in)
        return tg_fail(TG_ERR_SHAPE,
                       "linear: input of shape %s does not match weight of shape %s (in_features "
                       "%lld != %lld)",
                       tg_shape_str(x->ndim, x->shape, b1, sizeof b1),
                       tg_shape_str(w->ndim, w->shape, b2, sizeof b2),
                       (long long)x->shape[x->ndim - 1], (long long)in);
    if (b && (b->ndim != 1 || b->shape[0] != outf))
        return tg_fail(TG_ERR_SHAPE, "linear: bias of shape %s does not match weight of shape %s "
                       "(expected (%lld,))",
                       tg_shape_str(b->ndim, b->shape, b1, sizeof b1),
                       tg_shape_str(w->ndim, w->shape, b2, sizeof b2), (long long)outf);
    int64_t shape[2] = {rows, outf};
    if (x->ndim == 2) tg_meta_set(&args->out, x->dtype, 2, shape);
    else tg_meta_set(&args->out, x->dtype, 1, &outf);
    args->dims[0] = rows;
    args->dims[1] = in;
    args->dims[2] = outf;
    tg_dtype dt = x->dtype;
    const int nt = args->nthreads = tg_get_nthreads_internal();
    args->fwd_scratch = gemm_scratch(dt, rows, outf, in, 0, 1, nt);
    args->bwd_scratch = max_size(gemm_scratch(dt, rows, in, outf, 0, 0, nt),
                                 gemm_scratch(dt, outf, in, rows, 1, 0, nt));
    return TG_OK;
}

static void linear_forward(const tg_op_args *args, const tg_fwd_bufs *b) {
    const int64_t rows = args->dims[0], in = args->dims[1], outf = args->dims[2];
    const void *bias = b->in[2];
    if (bias && args->out.numel) { /* y rows start as the bias; gemm accumulates x . w^T on top */
        TG_FLOAT_SWITCH(args->out.dtype, {
            T *yy = b->out;
            const T *bb = bias;
            for (int64_t r = 0; r < rows; r++) memcpy(yy + r * outf, bb, (size_t)outf * sizeof(T));
        });
    }
    /* Y (rows, out) (+)= X (rows, in) . W^T   (W stored (out, in)) */
    gemm(args, rows, outf, in, b->in[0], in, 0, b->in[1], in, 1, b->out, outf,
         bias != NULL, b->scratch);
}

static void linear_backward(const tg_op_args *args, const tg_bwd_bufs *b) {
    const int64_t rows = args->dims[0], in = args->dims[1], outf = args->dims[2];
    const tg_dtype dt = args->out.dtype;
    const void *g = b->gout;
    /* gX (rows, in) += G (rows, out) . W (out, in); = for a fresh slot (b->assign) */
    if (b->gin[0])
        gemm(args, rows, in, outf, g, outf, 0, b->in[1], in, 0, b->gin[0], in,
             !(b->assign & 1u), b->scratch);
    /* gW (out, in) += G^T . X   (G stored (rows, out)) */
    if (b->gin[1])
        gemm(args, outf, in, rows, g, outf, 1, b->in[0], in, 0, b->gin[1], in,
             !(b->assign & 2u), b->scratch);
    /* gb (out) += column sums of G, row by row (none for a zero-size G, which may still
     * have 2^40 empty rows; gin[2] is NULL without a bias); a fresh slot starts at 0 */
    if (b->gin[2] && (b->assign & 4u))
        memset(b->gin[2], 0, (size_t)outf * tg_dtype_size(dt));
    if (b->gin[2] && rows && outf) {
        TG_FLOAT_SWITCH(dt, {
            const T *gg = g;
            T *gbb = b->gin[2];
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < outf; j++) gbb[j] += gg[r * outf + j];
        });
    }
}

/* The bias is not read by backward: it is not saved. */
const tg_op_info tg_row_linear = {.name = "linear",
                                  .saves = TG_SAVES_IN0 | TG_SAVES_IN1,
                                  .flags = TG_ROW_ASSIGN,
                                  .check = linear_check,
                                  .forward = linear_forward,
                                  .backward_kernel = linear_backward};

tg_tensor *tg_linear(tg_tensor *x, tg_tensor *w, tg_tensor *b) {
    tg_op_args args = {.op = TG_OP_LINEAR, .n_in = 3}; /* slot 2: the bias, NULL when absent */
    tg_tensor *in[3] = {x, w, b};
    return tg_apply(&args, in);
}
