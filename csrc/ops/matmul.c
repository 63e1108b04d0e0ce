/* ops/matmul.c — matmul (1-D and 2-D operands) and the fused linear layer.
 * Backward uses the gemm kernel's transpose flags: no transposed copies are made, and
 * gradients are accumulated straight into their slots (accumulate = 1). */
#include "../internal.h"

#include <string.h>

static void gemm(tg_dtype dt, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda, int ta,
                 const void *B, int64_t ldb, int tb, void *C, int64_t ldc, int acc) {
    int nt = tg_get_nthreads_internal();
    if (dt == TG_FLOAT32)
        tg_gemm_f32(M, N, K, A, lda, ta, B, ldb, tb, C, ldc, acc, nt);
    else
        tg_gemm_f64(M, N, K, A, lda, ta, B, ldb, tb, C, ldc, acc, nt);
}

/* ------------------------------------------------------------------ matmul */

/* a (m, k) or (k); b (k, n) or (k). Missing dims are treated as 1 and dropped from the
 * output, as torch.matmul does. */
typedef struct {
    int64_t m, k, n;
} mm_dims;

static tg_status matmul_dims(const tg_tensor *a, const tg_tensor *b, mm_dims *d, int *ndim,
                             int64_t *shape) {
    char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
    if (a->ndim < 1 || a->ndim > 2 || b->ndim < 1 || b->ndim > 2)
        return tg_fail(TG_ERR_SHAPE,
                       "matmul: only 1-D and 2-D operands are supported, got shapes %s and %s",
                       tg_shape_str(a->ndim, a->shape, b1, sizeof b1),
                       tg_shape_str(b->ndim, b->shape, b2, sizeof b2));
    d->m = a->ndim == 2 ? a->shape[0] : 1;
    d->k = a->shape[a->ndim - 1];
    int64_t kb = b->shape[0];
    d->n = b->ndim == 2 ? b->shape[1] : 1;
    if (d->k != kb)
        return tg_fail(TG_ERR_SHAPE, "matmul: shapes %s and %s cannot be multiplied (%lld != %lld)",
                       tg_shape_str(a->ndim, a->shape, b1, sizeof b1),
                       tg_shape_str(b->ndim, b->shape, b2, sizeof b2), (long long)d->k, (long long)kb);
    *ndim = 0;
    if (a->ndim == 2) shape[(*ndim)++] = d->m;
    if (b->ndim == 2) shape[(*ndim)++] = d->n;
    return TG_OK;
}

tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b) {
    if (tg_check_float("matmul", a) || tg_check_float("matmul", b) ||
        tg_check_same_dtype("matmul", a, b))
        return NULL;
    mm_dims d;
    int ndim;
    int64_t shape[2];
    if (matmul_dims(a, b, &d, &ndim, shape)) return NULL;
    tg_tensor *out = tg_tensor_new(a->dtype, ndim, shape, 0);
    if (!out) return NULL;
    /* C (m, n) = A (m, k) . B (k, n) */
    gemm(a->dtype, d.m, d.n, d.k, a->data, d.k, 0, b->data, d.n, 0, out->data, d.n, 0);
    if (tg_should_record(a, b, NULL) && !tg_record(out, TG_OP_MATMUL, a, b, NULL)) {
        tg_tensor_release(out);
        return NULL;
    }
    return out;
}

tg_status tg_matmul_backward(tg_node *n) {
    tg_tensor *a = n->inputs[0], *b = n->inputs[1];
    void *ga, *gb;
    if (tg_grad_slot(n, 0, &ga) || tg_grad_slot(n, 1, &gb)) return TG_ERR_NOMEM;
    mm_dims d;
    int ndim;
    int64_t shape[2];
    if (matmul_dims(a, b, &d, &ndim, shape)) return TG_ERR_SHAPE;
    const void *g = n->grad->data;
    /* gA (m, k) += G (m, n) . B^T   (B stored (k, n)) */
    if (ga) gemm(a->dtype, d.m, d.k, d.n, g, d.n, 0, b->data, d.n, 1, ga, d.k, 1);
    /* gB (k, n) += A^T . G          (A stored (m, k)) */
    if (gb) gemm(a->dtype, d.k, d.n, d.m, a->data, d.k, 1, g, d.n, 0, gb, d.n, 1);
    return TG_OK;
}

/* ------------------------------------------------------------------ linear */

/* x (rows, in) or (in); w (out, in); b (out) or NULL; y (rows, out) or (out). */
static tg_status linear_dims(const tg_tensor *x, const tg_tensor *w, const tg_tensor *b,
                             int64_t *rows, int64_t *in, int64_t *out) {
    char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
    if (w->ndim != 2)
        return tg_fail(TG_ERR_SHAPE, "linear: weight must be 2-D (out_features, in_features), got %s",
                       tg_shape_str(w->ndim, w->shape, b1, sizeof b1));
    if (x->ndim < 1 || x->ndim > 2)
        return tg_fail(TG_ERR_SHAPE, "linear: input must be 1-D or 2-D, got %s",
                       tg_shape_str(x->ndim, x->shape, b1, sizeof b1));
    *out = w->shape[0];
    *in = w->shape[1];
    *rows = x->ndim == 2 ? x->shape[0] : 1;
    if (x->shape[x->ndim - 1] != *in)
        return tg_fail(TG_ERR_SHAPE,
                       "linear: input of shape %s does not match weight of shape %s (in_features "
                       "%lld != %lld)",
                       tg_shape_str(x->ndim, x->shape, b1, sizeof b1),
                       tg_shape_str(w->ndim, w->shape, b2, sizeof b2),
                       (long long)x->shape[x->ndim - 1], (long long)*in);
    if (b && (b->ndim != 1 || b->shape[0] != *out))
        return tg_fail(TG_ERR_SHAPE, "linear: bias of shape %s does not match weight of shape %s "
                       "(expected (%lld,))",
                       tg_shape_str(b->ndim, b->shape, b1, sizeof b1),
                       tg_shape_str(w->ndim, w->shape, b2, sizeof b2), (long long)*out);
    return TG_OK;
}

tg_tensor *tg_linear(tg_tensor *x, tg_tensor *w, tg_tensor *b) {
    if (tg_check_float("linear", x) || tg_check_float("linear", w) ||
        tg_check_same_dtype("linear", x, w) || (b && (tg_check_float("linear", b) ||
                                                      tg_check_same_dtype("linear", x, b))))
        return NULL;
    int64_t rows, in, outf;
    if (linear_dims(x, w, b, &rows, &in, &outf)) return NULL;
    int64_t shape[2] = {rows, outf};
    tg_tensor *y = x->ndim == 2 ? tg_tensor_new(x->dtype, 2, shape, 0)
                                : tg_tensor_new(x->dtype, 1, &outf, 0);
    if (!y) return NULL;
    if (b && y->numel) { /* y rows start as the bias; gemm accumulates x . w^T on top */
        TG_FLOAT_SWITCH(x->dtype, {
            T *yy = y->data;
            const T *bb = b->data;
            for (int64_t r = 0; r < rows; r++) memcpy(yy + r * outf, bb, (size_t)outf * sizeof(T));
        });
    }
    /* Y (rows, out) (+)= X (rows, in) . W^T   (W stored (out, in)) */
    gemm(x->dtype, rows, outf, in, x->data, in, 0, w->data, in, 1, y->data, outf, b != NULL);
    if (tg_should_record(x, w, b) && !tg_record(y, TG_OP_LINEAR, x, w, b)) {
        tg_tensor_release(y);
        return NULL;
    }
    return y;
}

tg_status tg_linear_backward(tg_node *n) {
    tg_tensor *x = n->inputs[0], *w = n->inputs[1], *b = n->n_inputs > 2 ? n->inputs[2] : NULL;
    void *gx, *gw, *gb = NULL;
    if (tg_grad_slot(n, 0, &gx) || tg_grad_slot(n, 1, &gw)) return TG_ERR_NOMEM;
    if (b && tg_grad_slot(n, 2, &gb)) return TG_ERR_NOMEM;
    int64_t rows, in, outf;
    if (linear_dims(x, w, b, &rows, &in, &outf)) return TG_ERR_SHAPE;
    const void *g = n->grad->data;
    /* gX (rows, in) += G (rows, out) . W (out, in) */
    if (gx) gemm(x->dtype, rows, in, outf, g, outf, 0, w->data, in, 0, gx, in, 1);
    /* gW (out, in) += G^T . X   (G stored (rows, out)) */
    if (gw) gemm(x->dtype, outf, in, rows, g, outf, 1, x->data, in, 0, gw, in, 1);
    /* gb (out) += column sums of G, row by row (none for a zero-size G, which may still
     * have 2^40 empty rows) */
    if (gb && rows && outf) {
        TG_FLOAT_SWITCH(x->dtype, {
            const T *gg = g;
            T *gbb = gb;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < outf; j++) gbb[j] += gg[r * outf + j];
        });
    }
    return TG_OK;
}

/* ------------------------------------------------------------------ rows (legacy backward) */

const tg_op_info tg_row_matmul = {.name = "matmul", .backward = tg_matmul_backward, .saves = TG_SAVES_IN0 | TG_SAVES_IN1};
const tg_op_info tg_row_linear = {.name = "linear", .backward = tg_linear_backward, .saves = TG_SAVES_IN0 | TG_SAVES_IN1};
