/* ops/broadcast.h — numpy broadcasting of two operands, shared by the elementwise ops,
 * their backward and the comparisons. */
#ifndef TG_OPS_BROADCAST_H
#define TG_OPS_BROADCAST_H

#include "../internal.h"

/* ------------------------------------------------------------------ broadcasting */

typedef tg_bcast broadcast;

static inline void contiguous_strides(const tg_meta *t, int out_ndim, int64_t *strides) {
    int64_t s = 1;
    for (int d = out_ndim - 1; d >= 0; d--) {
        int td = d - (out_ndim - t->ndim);
        if (td < 0 || t->shape[td] == 1) {
            strides[d] = 0;
        } else {
            strides[d] = s;
        }
        if (td >= 0) s *= t->shape[td];
    }
}

static inline tg_status broadcast_metas(const char *op, const tg_meta *a, const tg_meta *b,
                                        broadcast *bc) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    bc->ndim = nd;
    bc->numel = 1;
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
            return tg_fail(TG_ERR_SHAPE,
                           "%s: shapes %s and %s are not broadcastable (size %lld vs %lld at "
                           "dim %d from the right)",
                           op, tg_shape_str(a->ndim, a->shape, b1, sizeof b1),
                           tg_shape_str(b->ndim, b->shape, b2, sizeof b2), (long long)sa,
                           (long long)sb, nd - d);
        }
        bc->shape[d] = sa == 1 ? sb : sa;
        bc->numel *= bc->shape[d];
    }
    contiguous_strides(a, nd, bc->sa);
    contiguous_strides(b, nd, bc->sb);
    return TG_OK;
}

static inline tg_status broadcast_shapes(const char *op, const tg_tensor *a, const tg_tensor *b,
                                         broadcast *bc) {
    tg_meta ma, mb;
    tg_meta_of(a, &ma);
    tg_meta_of(b, &mb);
    return broadcast_metas(op, &ma, &mb, bc);
}

/* The same iteration with fewer dimensions: size-1 dimensions dropped and neighbours that
 * both operands step through contiguously (or both broadcast) merged, so a same-shape or
 * scalar operand walks one flat segment and a row-broadcast one walks rows. The element
 * order (row-major over the output) is unchanged. */
static inline void broadcast_collapse(const broadcast *in, broadcast *out) {
    int nd = 0;
    out->numel = in->numel;
    for (int d = 0; d < in->ndim; d++) {
        if (in->shape[d] == 1) continue;
        if (nd > 0 && out->sa[nd - 1] == in->sa[d] * in->shape[d] &&
            out->sb[nd - 1] == in->sb[d] * in->shape[d]) {
            out->shape[nd - 1] *= in->shape[d];
            out->sa[nd - 1] = in->sa[d];
            out->sb[nd - 1] = in->sb[d];
            continue;
        }
        out->shape[nd] = in->shape[d];
        out->sa[nd] = in->sa[d];
        out->sb[nd] = in->sb[d];
        nd++;
    }
    out->ndim = nd;
}

/* Run SEG once per innermost segment of the (collapsed) broadcast, in row-major order,
 * with a0, b0, o0 the flat indices of the segment's first element in a, b and the
 * output, n its length and sai, sbi the operands' strides along it (each 0 or 1 for the
 * contiguous operands the ops have; the output's is 1). */
#define BROADCAST_SEGMENTS(bc_in, ...)                                                     \
    do {                                                                                   \
        broadcast cb_;                                                                     \
        broadcast_collapse(&(bc_in), &cb_);                                                \
        if (cb_.numel == 0) break;                                                         \
        const int nd_ = cb_.ndim;                                                          \
        const int64_t n = nd_ ? cb_.shape[nd_ - 1] : 1;                                    \
        const int64_t sai = nd_ ? cb_.sa[nd_ - 1] : 0, sbi = nd_ ? cb_.sb[nd_ - 1] : 0;    \
        int64_t idx_[TG_MAX_DIMS] = {0}, a0 = 0, b0 = 0;                                   \
        const int64_t outer_ = cb_.numel / n;                                              \
        (void)sai, (void)sbi;                                                              \
        for (int64_t o_ = 0; o_ < outer_; o_++) {                                          \
            const int64_t o0 = o_ * n;                                                     \
            (void)o0;                                                                      \
            __VA_ARGS__                                                                    \
            for (int d_ = nd_ - 2; d_ >= 0; d_--) {                                        \
                idx_[d_]++;                                                                \
                a0 += cb_.sa[d_];                                                          \
                b0 += cb_.sb[d_];                                                          \
                if (idx_[d_] < cb_.shape[d_]) break;                                       \
                a0 -= cb_.sa[d_] * cb_.shape[d_];                                          \
                b0 -= cb_.sb[d_] * cb_.shape[d_];                                          \
                idx_[d_] = 0;                                                              \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* Run BODY for every output element in row-major order with ia, ib, io the flat
 * indices into a, b and the output. The order is fixed, so backward's accumulation into
 * broadcast inputs is deterministic. Each segment's loop is written for its operands'
 * strides (1 and 1, 1 and 0, 0 and 1) so the compiler can vectorize it. */
#define BROADCAST_SEG_LOOP_(SA, SB, ...)                                                   \
    for (int64_t j_ = 0; j_ < n; j_++) {                                                   \
        const int64_t ia = a0 + j_ * (SA), ib = b0 + j_ * (SB), io = o0 + j_;              \
        (void)ia, (void)ib, (void)io;                                                      \
        __VA_ARGS__                                                                        \
    }
#define BROADCAST_LOOP(bc, ...)                                                            \
    BROADCAST_SEGMENTS(bc, {                                                               \
        if (sai == 1 && sbi == 1) {                                                        \
            BROADCAST_SEG_LOOP_(1, 1, __VA_ARGS__)                                         \
        } else if (sai == 1 && sbi == 0) {                                                 \
            BROADCAST_SEG_LOOP_(1, 0, __VA_ARGS__)                                         \
        } else if (sai == 0 && sbi == 1) {                                                 \
            BROADCAST_SEG_LOOP_(0, 1, __VA_ARGS__)                                         \
        } else {                                                                           \
            BROADCAST_SEG_LOOP_(sai, sbi, __VA_ARGS__)                                     \
        }                                                                                  \
    })

#endif /* TG_OPS_BROADCAST_H */
