/* tape.c — tape records (nodes), the op table and the backward pass.
 *
 * Each op output that needs a gradient owns a record of the op that made it; records
 * own their inputs. So the tape of a loss is exactly the set of records reachable from
 * it, and a forward pass that is abandoned is freed with its tensors (a flat, global
 * tape would keep every abandoned forward alive until the next backward).
 * tg_backward orders the reachable records with an explicit-stack depth-first search
 * (reverse post-order = reverse execution order for every dependency), then walks them
 * with a loop, never recursion. Inputs are visited in their fixed order, so the
 * accumulation order — and hence every bit of every gradient — is the same each run. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

const tg_op_info *const tg_op_rows[TG_OP_COUNT] = {
#define TG_OP_ROW_PTR_(ID, row) [TG_OP_##ID] = &tg_row_##row,
    TG_OP_LIST(TG_OP_ROW_PTR_)
#undef TG_OP_ROW_PTR_
};

int tg_op_count(void) { return TG_OP_COUNT; }
const char *tg_op_name(int op) { return op >= 0 && op < TG_OP_COUNT ? tg_op_rows[op]->name : NULL; }

/* ------------------------------------------------------------------ recording */

int tg_should_record(const tg_tensor *a, const tg_tensor *b, const tg_tensor *c) {
    if (!tg_is_grad_enabled()) return 0;
    return (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad);
}

tg_node *tg_record(tg_tensor *out, tg_op op, tg_tensor *a, tg_tensor *b, tg_tensor *c) {
    /* one block: the record, then the row op's arguments */
    tg_node *n = tg_calloc(1, sizeof *n + sizeof(tg_op_args));
    if (!n) {
        tg_fail(TG_ERR_NOMEM, "%s: out of memory recording the op", tg_op_rows[op]->name);
        return NULL;
    }
    n->refcount = 1;
    n->op = op;
    n->args = (tg_op_args *)(n + 1);
    tg_tensor *in[TG_NODE_MAX_INPUTS] = {a, b, c};
    n->n_inputs = c ? 3 : b ? 2 : 1;
    for (int i = 0; i < n->n_inputs; i++) {
        n->inputs[i] = in[i];
        tg_tensor_retain(in[i]);
        if (in[i]) n->versions[i] = tg_storage_version(in[i]);
    }
    n->out_ndim = out->ndim;
    memcpy(n->out_shape, out->shape, sizeof n->out_shape);
    out->node = n;
    out->requires_grad = 1;
    return n;
}

static void node_retain(tg_node *n) { TG_REF_INC(&n->refcount); }

static void node_drop_tensors(tg_node *n) {
    for (int i = 0; i < n->n_inputs; i++) {
        tg_tensor_release(n->inputs[i]);
        n->inputs[i] = NULL;
    }
    tg_tensor_release(n->saved);
    n->saved = NULL;
    tg_tensor_release(n->priv);
    n->priv = NULL;
    tg_tensor_release(n->grad);
    n->grad = NULL;
}

static void node_release(tg_node *n) {
    if (TG_REF_DEC(&n->refcount) > 0) return;
    node_drop_tensors(n);
    tg_free(n);
}

/* ------------------------------------------------------------------ backward */

tg_status tg_grad_slot(tg_node *n, int i, void **out, int *assign) {
    *out = NULL;
    *assign = 0;
    tg_tensor *in = n->inputs[i];
    if (!in || !in->requires_grad) return TG_OK;
    tg_tensor **slot = in->node ? &in->node->grad : &in->grad;
    int created = 0;
    if (!*slot) {
        *assign = (tg_op_rows[n->op]->flags & TG_ROW_ASSIGN) != 0;
        *slot = tg_tensor_new_like(in, !*assign);
        if (!*slot) return TG_ERR_NOMEM;
        created = 1;
    }
    if (tg_capture_active()) tg_capture_slot(n, i, created, *assign);
    *out = (*slot)->data;
    return TG_OK;
}

/* TG_ERR_STATE when a tensor n's backward reads was modified in place after the op. A
 * saved output (node->saved) is always a fresh buffer of the op, at version 0 when saved. */
static tg_status check_versions(const tg_node *n) {
    unsigned saves = tg_op_rows[n->op]->saves;
    for (int i = 0; i < n->n_inputs; i++) {
        const tg_tensor *in = n->inputs[i];
        if (!(saves & (1u << i)) || !in || tg_storage_version(in) == n->versions[i]) continue;
        char buf[TG_SHAPE_BUF];
        return tg_fail(TG_ERR_STATE,
                       "backward: one of the tensors needed for the gradient of '%s' (input %d, "
                       "%s of shape %s) has been modified by an in-place operation since: it is "
                       "at version %lld, expected version %lld (compute it out of place, or "
                       "modify a clone)",
                       tg_op_rows[n->op]->name, i, tg_dtype_name(in->dtype),
                       tg_shape_str(in->ndim, in->shape, buf, sizeof buf),
                       (long long)tg_storage_version(in), (long long)n->versions[i]);
    }
    if ((saves & TG_SAVES_OUTPUT) && n->saved && tg_storage_version(n->saved) != 0) {
        char buf[TG_SHAPE_BUF];
        return tg_fail(TG_ERR_STATE,
                       "backward: the output of '%s' (shape %s), which its gradient needs, has "
                       "been modified by an in-place operation since: it is at version %lld, "
                       "expected version 0 (modify a clone instead)",
                       tg_op_rows[n->op]->name,
                       tg_shape_str(n->out_ndim, n->out_shape, buf, sizeof buf),
                       (long long)tg_storage_version(n->saved));
    }
    return TG_OK;
}

/* ------------------------------------------------------------------ claims
 *
 * A backward owns the records it runs through: their gradient buffers (node->grad) and
 * traversal state would be shared with a second backward running at the same time
 * through a common part of the graph (lost updates, a double free). Each record is
 * claimed by compare-and-swap (0 -> this backward's token); a record already claimed by
 * this backward is visited; one claimed by another running backward makes this one fail
 * cleanly, after letting go of its own claims. */

#if defined(_MSC_VER) && !defined(__clang__)
#define TG_CLAIM_FREE(p) ((void)_InterlockedExchange64((volatile long long *)(p), 0))
#else
#define TG_CLAIM_FREE(p) __atomic_store_n((p), (uintptr_t)0, __ATOMIC_RELEASE)
#endif

enum { CLAIM_NEW, CLAIM_MINE, CLAIM_OTHER };

static int claim_node(tg_node *n, uintptr_t token) {
#if defined(_MSC_VER) && !defined(__clang__)
    uintptr_t seen = (uintptr_t)_InterlockedCompareExchange64((volatile long long *)&n->claim,
                                                              (long long)token, 0);
    if (seen == 0) return CLAIM_NEW;
#else
    uintptr_t seen = 0;
    if (__atomic_compare_exchange_n(&n->claim, &seen, token, 0, __ATOMIC_ACQUIRE,
                                    __ATOMIC_ACQUIRE))
        return CLAIM_NEW;
#endif
    return seen == token ? CLAIM_MINE : CLAIM_OTHER;
}

static tg_status claimed_by_other(const tg_node *n) {
    return tg_fail(TG_ERR_STATE,
                   "backward: this graph is in use by another thread's backward (the record "
                   "of '%s' is being run through by it); run backward through a shared graph "
                   "from one thread at a time",
                   tg_op_rows[n->op]->name);
}

/* Reverse post-order of the records reachable from root, each retained and claimed by
 * token (on failure: none retained, no claim kept). */
static tg_status collect(tg_node *root, uintptr_t token, tg_node ***order_out,
                         int64_t *count_out) {
    int64_t cap = 64, count = 0, depth_cap = 64, depth = 0;
    tg_node **order = tg_malloc((size_t)cap * sizeof *order);
    struct frame {
        tg_node *node;
        int next;
    } *stack = tg_malloc((size_t)depth_cap * sizeof *stack);
    tg_status st = TG_OK;
    if (!order || !stack) {
        st = tg_fail(TG_ERR_NOMEM, "backward: out of memory");
        goto done;
    }
    if (claim_node(root, token) != CLAIM_NEW) {
        st = claimed_by_other(root);
        goto done;
    }
    stack[depth++] = (struct frame){root, 0};
    while (depth > 0) {
        struct frame *f = &stack[depth - 1];
        if (f->node->released) {
            st = tg_fail(TG_ERR_STATE,
                         "backward: trying to backward through the graph a second time: the "
                         "record of '%s' was freed by an earlier backward (pass "
                         "retain_graph=True to the first backward if you need a second)",
                         tg_op_rows[f->node->op]->name);
            goto done;
        }
        if (f->next < f->node->n_inputs) {
            tg_tensor *in = f->node->inputs[f->next++];
            if (in && in->node && in->requires_grad) {
                if (depth == depth_cap) { /* room first: a claimed record is always stacked */
                    void *grown = tg_realloc(stack, (size_t)depth_cap * 2 * sizeof *stack);
                    if (!grown) {
                        st = tg_fail(TG_ERR_NOMEM, "backward: out of memory");
                        goto done;
                    }
                    stack = grown;
                    depth_cap *= 2;
                }
                int c = claim_node(in->node, token);
                if (c == CLAIM_OTHER) {
                    st = claimed_by_other(in->node);
                    goto done;
                }
                if (c == CLAIM_NEW) stack[depth++] = (struct frame){in->node, 0};
            }
            continue;
        }
        if (count == cap) {
            void *grown = tg_realloc(order, (size_t)cap * 2 * sizeof *order);
            if (!grown) {
                st = tg_fail(TG_ERR_NOMEM, "backward: out of memory");
                goto done;
            }
            order = grown;
            cap *= 2;
        }
        node_retain(f->node);
        order[count++] = f->node;
        depth--;
    }
done:
    if (st != TG_OK) /* let go of the claimed records still on the stack */
        for (int64_t i = 0; i < depth; i++) TG_CLAIM_FREE(&stack[i].node->claim);
    tg_free(stack);
    if (st != TG_OK) {
        for (int64_t i = 0; i < count; i++) {
            TG_CLAIM_FREE(&order[i]->claim);
            node_release(order[i]);
        }
        tg_free(order);
        return st;
    }
    *order_out = order;
    *count_out = count;
    return TG_OK;
}

static tg_status add_into(tg_tensor *dst, const tg_tensor *src) {
    TG_FLOAT_SWITCH(dst->dtype, {
        T *d = dst->data;
        const T *s = src->data;
        for (int64_t i = 0; i < dst->numel; i++) d[i] += s[i];
    });
    return TG_OK;
}

/* ------------------------------------------------------------------ leaf gradients
 *
 * A leaf (a parameter) may be shared by graphs that other threads run backward on at the
 * same time, and its .grad may be replaced or zeroed meanwhile (cffi releases the GIL on
 * every call). So each node's backward runs with the grad locks of its leaf inputs held,
 * taken in address order (no deadlock). The kernels keep adding straight into the leaf
 * gradient, in the same order as without threads: single-threaded results keep every
 * bit, and two threads' contributions each land whole. */

enum { MAX_LEAVES = TG_NODE_MAX_INPUTS };

typedef struct {
    int n;
    tg_tensor *leaf[MAX_LEAVES];
    tg_tensor *stash[MAX_LEAVES]; /* the real gradient while a private one is used */
} leaf_set;

static int shares_storage(const tg_tensor *a, const tg_tensor *b) {
    return a && b && a->storage == b->storage;
}

/* Whether the node's backward reads the storage of g (an input, the saved tensor or the
 * output gradient): then adding into g while reading would read updated values. */
static int node_reads(const tg_node *n, const tg_tensor *g) {
    if (shares_storage(n->saved, g) || shares_storage(n->grad, g)) return 1;
    for (int k = 0; k < n->n_inputs; k++)
        if (shares_storage(n->inputs[k], g)) return 1;
    return 0;
}

/* Lock the leaf inputs of n that take a gradient. A leaf gradient that shares storage
 * with something n's backward reads (a caller assigned w.grad = w.detach(), or another
 * input's data) is set aside: the kernel adds into a fresh zeroed one, which
 * release_leaves adds into the real gradient afterwards (PyTorch's order as well: compute
 * the contribution, then accumulate it). */
static void lock_leaves(tg_node *n, leaf_set *ls) {
    ls->n = 0;
    for (int k = 0; k < n->n_inputs; k++) {
        tg_tensor *in = n->inputs[k];
        if (!in || in->node || !in->requires_grad) continue;
        int dup = 0;
        for (int j = 0; j < ls->n; j++) dup |= ls->leaf[j] == in;
        if (dup) continue;
        int j = ls->n++; /* insertion in address order */
        while (j > 0 && (uintptr_t)ls->leaf[j - 1] > (uintptr_t)in) {
            ls->leaf[j] = ls->leaf[j - 1];
            j--;
        }
        ls->leaf[j] = in;
    }
    for (int j = 0; j < ls->n; j++) {
        tg_tensor *leaf = ls->leaf[j];
        tg_grad_lock(leaf);
        ls->stash[j] = NULL;
        if (leaf->grad && node_reads(n, leaf->grad)) {
            ls->stash[j] = leaf->grad;
            leaf->grad = NULL;
        }
    }
}

static void release_leaves(leaf_set *ls) {
    for (int j = ls->n - 1; j >= 0; j--) {
        tg_tensor *leaf = ls->leaf[j];
        if (ls->stash[j]) {
            tg_tensor *private_grad = leaf->grad;
            leaf->grad = ls->stash[j];
            if (private_grad) add_into(leaf->grad, private_grad);
            tg_tensor_release(private_grad);
        }
        tg_grad_unlock(leaf);
    }
}

tg_status tg_backward(tg_tensor *root, tg_tensor *grad, int retain_graph) {
    char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
    if (!root) return tg_fail(TG_ERR_ARG, "backward: root is NULL");
    if (!root->requires_grad)
        return tg_fail(TG_ERR_STATE,
                       "backward: the tensor does not require grad and has no grad_fn (was it "
                       "computed under no_grad, or from tensors without requires_grad=True?)");
    tg_tensor *seed;
    if (grad) {
        if (grad->dtype != root->dtype || grad->ndim != root->ndim ||
            memcmp(grad->shape, root->shape, (size_t)root->ndim * sizeof(int64_t)) != 0)
            return tg_fail(TG_ERR_SHAPE,
                           "backward: gradient of shape %s (%s) does not match the tensor's "
                           "shape %s (%s)",
                           tg_shape_str(grad->ndim, grad->shape, b1, sizeof b1),
                           tg_dtype_name(grad->dtype), tg_shape_str(root->ndim, root->shape, b2, sizeof b2),
                           tg_dtype_name(root->dtype));
        /* The caller's tensor seeds a record's gradient as it is (no copy: at 4096^2 the
         * copy was 64 MB per backward): backward only reads it, while the root record's
         * backward runs, and a leaf gradient that shares its storage (y.backward(x.grad))
         * is set aside during that record's backward (lock_leaves: the kernels add into
         * a private gradient, added into the real one afterwards), so no kernel reads
         * values it has updated. A leaf root's gradient becomes a copy: it is the leaf's
         * own from then on, and later backwards add into it. */
        if (root->node) {
            seed = grad;
            tg_tensor_retain(seed);
        } else {
            seed = tg_clone_data(grad);
            if (!seed) return TG_ERR_NOMEM;
        }
    } else {
        if (root->numel != 1)
            return tg_fail(TG_ERR_STATE,
                           "backward: grad can be implicitly created only for tensors with one "
                           "element, got shape %s; pass a gradient of that shape",
                           tg_shape_str(root->ndim, root->shape, b1, sizeof b1));
        seed = tg_full(root->dtype, root->ndim, root->shape, 1.0);
        if (!seed) return TG_ERR_NOMEM;
    }

    if (!root->node) { /* a leaf: its gradient is the seed */
        tg_status st = TG_OK;
        tg_grad_lock(root);
        if (!root->grad) {
            root->grad = seed; /* seed is a fresh tensor owned here */
            seed = NULL;
        } else {
            st = add_into(root->grad, seed);
        }
        tg_grad_unlock(root);
        tg_tensor_release(seed);
        return st;
    }

    tg_node **order = NULL;
    int64_t count = 0;
    /* This backward's claim token: the address of a local, unique among the backwards
     * running at the same time. */
    char token_site;
    const uintptr_t token = (uintptr_t)&token_site;
    tg_status st = collect(root->node, token, &order, &count);
    if (st != TG_OK) {
        tg_tensor_release(seed);
        return st;
    }
    tg_tensor_release(root->node->grad);
    root->node->grad = seed;
    if (tg_capture_active()) tg_capture_seed(root, grad);

    /* order is post-order (inputs first); walk it backwards: outputs before inputs. */
    for (int64_t i = count - 1; i >= 0; i--) {
        tg_node *n = order[i];
        if (n->grad && st == TG_OK) st = check_versions(n);
        if (n->grad && st == TG_OK) {
            leaf_set leaves;
            lock_leaves(n, &leaves);
            st = tg_op_rows[n->op]->backward ? tg_op_rows[n->op]->backward(n)
                                             : tg_apply_backward(n);
            if (st == TG_OK && tg_capture_active()) tg_capture_backward(n);
            release_leaves(&leaves);
            if (st != TG_OK && tg_last_status() == TG_OK)
                tg_fail(st, "backward of '%s' failed", tg_op_rows[n->op]->name);
        }
        tg_tensor_release(n->grad);
        n->grad = NULL;
        if (!retain_graph) {
            for (int k = 0; k < n->n_inputs; k++) {
                tg_tensor_release(n->inputs[k]);
                n->inputs[k] = NULL;
            }
            tg_tensor_release(n->saved);
            n->saved = NULL;
            tg_tensor_release(n->priv);
            n->priv = NULL;
            n->released = 1;
        }
    }
    for (int64_t i = 0; i < count; i++) {
        TG_CLAIM_FREE(&order[i]->claim);
        node_release(order[i]);
    }
    tg_free(order);
    return st;
}
