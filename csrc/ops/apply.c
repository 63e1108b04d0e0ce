/* ops/apply.c — the one eager path of every row op (internal.h, "op rows"):
 * check -> validate -> allocate -> forward kernel -> record, and the matching generic
 * backward step (allocate the gradient slots, run the backward kernel). */
#include "../internal.h"

#include <string.h>

/* Scratch up to this size lives on the stack of the call. */
enum { STACK_SCRATCH = 4096 };

/* 64-byte aligned scratch of `bytes`: from stack_buf when it fits, else from the heap
 * (*heap set; freed by the caller). NULL with the error set when out of memory. */
static void *scratch_get(const char *name, size_t bytes, unsigned char *stack_buf, void **heap) {
    *heap = NULL;
    if (bytes == 0) return NULL;
    if (bytes <= STACK_SCRATCH) return stack_buf;
    if (bytes > SIZE_MAX - 64) {
        tg_fail(TG_ERR_NOMEM, "%s: scratch of %zu bytes is too large", name, bytes);
        return NULL;
    }
    *heap = tg_malloc(bytes + 64);
    if (!*heap) {
        tg_fail(TG_ERR_NOMEM, "%s: out of memory for %zu bytes of scratch", name, bytes);
        return NULL;
    }
    return (void *)(((uintptr_t)*heap + 63) & ~(uintptr_t)63);
}

/* A tensor of `m` on a's storage, starting `offset` elements after a's first. */
static tg_tensor *offset_view(tg_tensor *a, const tg_meta *m, int64_t offset) {
    tg_tensor *v = tg_tensor_view(a, m->ndim, m->shape);
    if (!v) return NULL;
    v->numel = m->numel;
    v->data = (char *)a->data + (size_t)offset * tg_dtype_size(a->dtype);
    return v;
}

tg_tensor *tg_apply(tg_op_args *args, tg_tensor *const *in) {
    const tg_op_info *row = tg_op_rows[args->op];
    args->present = 0;
    for (int i = 0; i < args->n_in; i++) {
        if (!in[i]) continue;
        args->present |= 1u << i;
        tg_meta_of(in[i], &args->in[i]);
    }
    if (!(args->present & 1u)) {
        tg_fail(TG_ERR_ARG, "%s: got a NULL tensor", row->name);
        return NULL;
    }
    if (row->check(args) != TG_OK) return NULL;
    const void *data[TG_NODE_MAX_INPUTS] = {0};
    for (int i = 0; i < args->n_in; i++) data[i] = in[i] ? in[i]->data : NULL;
    if (row->validate && row->validate(args, data) != TG_OK) return NULL;

    tg_tensor *out = NULL, *saved = NULL;
    if (row->flags & TG_ROW_VIEW) {
        out = offset_view(in[0], &args->out, args->offset);
        if (!out) return NULL;
    } else {
        out = tg_tensor_new(args->out.dtype, args->out.ndim, args->out.shape, 0);
        if (!out) return NULL;
        if (args->saved_numel) {
            saved = tg_tensor_new(args->out.dtype, 1, &args->saved_numel, 0);
            if (!saved) goto fail;
        }
        _Alignas(64) unsigned char stack_buf[STACK_SCRATCH];
        void *heap;
        void *scratch = scratch_get(row->name, args->fwd_scratch, stack_buf, &heap);
        if (args->fwd_scratch && !scratch) goto fail;
        tg_fwd_bufs b = {.out = out->data, .saved = saved ? saved->data : NULL, .scratch = scratch};
        memcpy(b.in, data, sizeof data);
        row->forward(args, &b);
        tg_free(heap);
    }

    if (row->backward_kernel && tg_should_record(in[0], args->n_in > 1 ? in[1] : NULL,
                                                 args->n_in > 2 ? in[2] : NULL)) {
        tg_node *n = tg_record(out, args->op, in[0], args->n_in > 1 ? in[1] : NULL,
                               args->n_in > 2 ? in[2] : NULL);
        if (!n) goto fail;
        n->n_inputs = args->n_in; /* an absent middle or last input keeps its slot */
        memcpy(n->args, args, sizeof *args);
        n->priv = saved;
        saved = NULL;
        if (row->saves & TG_SAVES_OUTPUT) {
            /* a handle on the output, which backward reads (its version is checked) */
            n->saved = tg_tensor_view(out, out->ndim, out->shape);
            if (!n->saved) goto fail;
        }
    }
    if (tg_capture_active())
        tg_capture_op(args, in, out, saved ? saved : out->node ? out->node->priv : NULL, out->node);
    tg_tensor_release(saved);
    return out;
fail:
    tg_tensor_release(saved);
    tg_tensor_release(out);
    return NULL;
}

/* A failed step leaves the slots it created for this kernel zeroed, as slots are when the
 * kernel has not run. */
static tg_status zero_fresh_slots(const tg_node *n, const tg_bwd_bufs *b) {
    for (int i = 0; i < n->n_inputs; i++)
        if (b->assign & (1u << i))
            memset(b->gin[i], 0, (size_t)n->inputs[i]->numel * tg_dtype_size(n->inputs[i]->dtype));
    return TG_ERR_NOMEM;
}

tg_status tg_apply_backward(tg_node *n) {
    const tg_op_info *row = tg_op_rows[n->op];
    const tg_op_args *args = n->args;
    tg_bwd_bufs b = {.out = n->saved ? n->saved->data : NULL,
                     .saved = n->priv ? n->priv->data : NULL,
                     .gout = n->grad->data};
    int any = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        b.in[i] = n->inputs[i] ? n->inputs[i]->data : NULL;
        int assign;
        if (tg_grad_slot(n, i, &b.gin[i], &assign) != TG_OK) return zero_fresh_slots(n, &b);
        b.assign |= (unsigned)assign << i;
        any |= b.gin[i] != NULL;
    }
    if (!any) return TG_OK;
    _Alignas(64) unsigned char stack_buf[STACK_SCRATCH];
    void *heap;
    b.scratch = scratch_get(row->name, args->bwd_scratch, stack_buf, &heap);
    if (args->bwd_scratch && !b.scratch) return zero_fresh_slots(n, &b);
    row->backward_kernel(args, &b);
    tg_free(heap);
    return TG_OK;
}
