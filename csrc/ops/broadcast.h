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

/* Run BODY for every output element in row-major order with ia, ib, io the flat
 * indices into a, b and the output. The order is fixed, so backward's accumulation into
 * broadcast inputs is deterministic. */
#define BROADCAST_LOOP(bc, ...)                                                            \
    do {                                                                                   \
        int nd_ = (bc).ndim;                                                               \
        int64_t inner_ = nd_ ? (bc).shape[nd_ - 1] : 1;                                    \
        if ((bc).numel == 0) break;                                                        \
        int64_t sai_ = nd_ ? (bc).sa[nd_ - 1] : 0, sbi_ = nd_ ? (bc).sb[nd_ - 1] : 0;      \
        int64_t idx_[TG_MAX_DIMS] = {0}, a0_ = 0, b0_ = 0, outer_ = (bc).numel / inner_;   \
        for (int64_t o_ = 0; o_ < outer_; o_++) {                                          \
            for (int64_t j_ = 0; j_ < inner_; j_++) {                                      \
                int64_t ia = a0_ + j_ * sai_, ib = b0_ + j_ * sbi_, io = o_ * inner_ + j_;  \
                __VA_ARGS__                                                                       \
            }                                                                              \
            for (int d_ = nd_ - 2; d_ >= 0; d_--) {                                        \
                idx_[d_]++;                                                                \
                a0_ += (bc).sa[d_];                                                        \
                b0_ += (bc).sb[d_];                                                        \
                if (idx_[d_] < (bc).shape[d_]) break;                                      \
                a0_ -= (bc).sa[d_] * (bc).shape[d_];                                       \
                b0_ -= (bc).sb[d_] * (bc).shape[d_];                                       \
                idx_[d_] = 0;                                                              \
            }                                                                              \
        }                                                                                  \
    } while (0)

#endif /* TG_OPS_BROADCAST_H */
