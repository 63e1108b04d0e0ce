/* program.c — capture one training (or inference) step as a flat list of kernel calls
 * over buffers planned once, and replay it for many steps in one call.
 *
 * Capture runs the real step eagerly, once, on this thread (tg_capture_begin ..
 * tg_capture_end): every row op that runs (tg_apply), every backward step of a record
 * (tg_backward), every gradient slot it creates, and every optimizer zero_grad / step is
 * also appended to the program as an instruction. Tensors are mapped to buffers as they
 * are seen: the declared inputs (the batch), parameters and other tensors that no captured
 * op made (leaves: referenced where they are, retained), outputs of captured ops
 * (planned buffers the program owns), views (aliases at an offset), and gradients
 * (planned; a parameter's gradient lives in the program's arena and the parameter's .grad
 * becomes a view of it). At tg_capture_end every buffer gets its place in one arena and
 * every instruction its resolved pointers, so a replayed step is a loop over
 * instructions calling the same kernels eager mode calls, in the same order, on buffers
 * zeroed and accumulated exactly as eager's: bitwise the same results, and nothing is
 * allocated per step. */
#include "internal.h"
#include "kernels/gemm_internal.h"

#include <stdio.h> /* snprintf */
#include <stdlib.h>
#include <string.h>

enum { B_TEMP, B_EXT, B_INPUT, B_ALIAS, B_PGRAD };

typedef struct {
    int kind;
    tg_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t numel;
    tg_tensor *ext;  /* B_EXT: the tensor (retained); B_PGRAD: the parameter */
    int alias_of;    /* B_ALIAS: the buffer viewed */
    size_t alias_off; /* B_ALIAS: byte offset in it */
    int grad;        /* the buffer holding this one's gradient, or -1 */
    int param;       /* B_PGRAD: index in the program's parameter list */
    size_t arena_off;
    void *data;      /* resolved at the end of capture */
} pbuf;

enum { I_FWD, I_BWD, I_FILL_ONE, I_ZERO, I_PGRAD_FIRST, I_ZERO_GRAD, I_OPTIM };

typedef struct {
    int kind;
    tg_op op;
    int in[TG_NODE_MAX_INPUTS], out, saved; /* buffers (-1 none) */
    int gout, gin[TG_NODE_MAX_INPUTS];
    int buf;   /* I_FILL_ONE, I_ZERO: the buffer; I_PGRAD_FIRST: the parameter index */
    int flag;  /* I_ZERO_GRAD: set_to_none; I_FWD: validated for the whole run already */
    tg_optim *opt;
    tg_op_args args;
    /* I_BWD of a TG_ROW_ASSIGN row: the inputs whose gradient slot it creates (bits: the
     * kernel writes them whole, nothing zeroes them first), and per input the parameter
     * whose gradient it writes whole when that .grad is None at the time (else -1) */
    unsigned assign;
    int pfirst[TG_NODE_MAX_INPUTS];
    /* resolved */
    tg_fwd_bufs fb;
    tg_bwd_bufs bb;
} pinstr;

typedef struct {
    tg_tensor *t; /* retained while capturing */
    int buf;
} pmap;

typedef struct {
    tg_tensor *tensor; /* the parameter (retained) */
    int buf;           /* its B_EXT buffer */
    int gbuf;          /* its B_PGRAD buffer */
    tg_tensor *view;   /* its .grad while the program owns it: a view of the arena */
    void *data;        /* the parameter's data pointer at capture */
} pparam;

struct tg_program {
    int state; /* 0 new, 1 capturing, 2 ready, 3 failed */
    tg_status error;
    char message[384]; /* the capture's first error */
    pbuf *bufs;
    int nbufs, cap_bufs;
    pinstr *ins;
    int nins, cap_ins;
    pmap *map;
    int nmap, cap_map;
    pparam *params;
    int nparams, cap_params;
    uint8_t *grad_none; /* per parameter: its .grad is None now */
    tg_optim *optims[8];
    int noptims;
    int *optmap[8];  /* per optimizer: its parameter j is the program's parameter optmap[o][j] */
    int inputs[2];   /* buffers of the declared inputs, -1 none */
    int64_t batch;   /* rows of input 0 */
    int output;      /* buffer of the declared output (the loss) */
    long running; /* a run holds the program (atomic flag: a second run at once fails) */
    /* what tg_capture_slot saw for pend_node's backward step, for its I_BWD */
    const tg_node *pend_node;
    unsigned pend_assign;
    int pend_pfirst[TG_NODE_MAX_INPUTS];
    tg_tensor *arena;
    void *scratch;
    size_t scratch_bytes;
};

static _Thread_local tg_program *tls_capture = NULL;

int tg_capture_active(void) { return tls_capture != NULL; }

/* ------------------------------------------------------------------ building */

static tg_status prog_fail(tg_program *p, tg_status st) {
    if (p->state == 1) p->state = 3;
    if (!p->error) {
        p->error = st;
        snprintf(p->message, sizeof p->message, "%s", tg_last_error());
    }
    return st;
}

/* The capture failed earlier: report its first error again. */
static tg_status failed_earlier(const tg_program *p, const char *where) {
    return tg_fail(p->error ? p->error : TG_ERR_STATE, "%s: the capture failed: %s", where,
                   p->message[0] ? p->message : "(no message)");
}

static int grow(void **arr, int *cap, int n, size_t elsize) {
    if (n < *cap) return 1;
    int nc = *cap ? *cap * 2 : 32;
    void *g = tg_realloc(*arr, (size_t)nc * elsize);
    if (!g) return 0;
    *arr = g;
    *cap = nc;
    return 1;
}

static int new_buf(tg_program *p, int kind, const tg_meta *m) {
    if (!grow((void **)&p->bufs, &p->cap_bufs, p->nbufs, sizeof *p->bufs)) {
        prog_fail(p, tg_fail(TG_ERR_NOMEM, "capture: out of memory"));
        return -1;
    }
    pbuf *b = &p->bufs[p->nbufs];
    memset(b, 0, sizeof *b);
    b->kind = kind;
    b->dtype = m->dtype;
    b->ndim = m->ndim;
    memcpy(b->shape, m->shape, sizeof b->shape);
    b->numel = m->numel;
    b->grad = -1;
    b->param = -1;
    b->alias_of = -1;
    return p->nbufs++;
}

static int map_find(const tg_program *p, const tg_tensor *t) {
    for (int i = p->nmap - 1; i >= 0; i--)
        if (p->map[i].t == t) return p->map[i].buf;
    return -1;
}

static int map_add(tg_program *p, tg_tensor *t, int buf) {
    if (!grow((void **)&p->map, &p->cap_map, p->nmap, sizeof *p->map)) {
        prog_fail(p, tg_fail(TG_ERR_NOMEM, "capture: out of memory"));
        return -1;
    }
    tg_tensor_retain(t);
    p->map[p->nmap++] = (pmap){t, buf};
    return buf;
}

/* The buffer of a tensor an op reads: known, or a leaf seen for the first time
 * (referenced where it is). */
static int buf_of_input(tg_program *p, tg_tensor *t) {
    int b = map_find(p, t);
    if (b >= 0) return b;
    /* a tensor with a record that the capture did not see was made before it began:
     * its value is fixed, like any other leaf's */
    tg_meta m;
    tg_meta_of(t, &m);
    b = new_buf(p, B_EXT, &m);
    if (b < 0) return -1;
    p->bufs[b].ext = t;
    tg_tensor_retain(t);
    return map_add(p, t, b);
}

static pinstr *new_ins(tg_program *p, int kind) {
    if (!grow((void **)&p->ins, &p->cap_ins, p->nins, sizeof *p->ins)) {
        prog_fail(p, tg_fail(TG_ERR_NOMEM, "capture: out of memory"));
        return NULL;
    }
    pinstr *in = &p->ins[p->nins++];
    memset(in, 0, sizeof *in);
    in->kind = kind;
    in->out = in->saved = in->gout = in->buf = -1;
    for (int i = 0; i < TG_NODE_MAX_INPUTS; i++) in->in[i] = in->gin[i] = in->pfirst[i] = -1;
    return in;
}

/* The parameter index of a leaf that takes a gradient (registered on first use). */
static int param_of(tg_program *p, tg_tensor *leaf) {
    for (int i = 0; i < p->nparams; i++)
        if (p->params[i].tensor == leaf) return i;
    if (!grow((void **)&p->params, &p->cap_params, p->nparams, sizeof *p->params)) {
        prog_fail(p, tg_fail(TG_ERR_NOMEM, "capture: out of memory"));
        return -1;
    }
    int b = buf_of_input(p, leaf);
    if (b < 0) return -1;
    tg_meta m;
    tg_meta_of(leaf, &m);
    int g = new_buf(p, B_PGRAD, &m);
    if (g < 0) return -1;
    int i = p->nparams++;
    p->params[i] = (pparam){.tensor = leaf, .buf = b, .gbuf = g, .data = leaf->data};
    tg_tensor_retain(leaf);
    p->bufs[b].grad = g;
    p->bufs[g].param = i;
    p->bufs[g].ext = leaf;
    return i;
}

/* The gradient buffer of buffer b (a planned one, made on first use). */
static int grad_of(tg_program *p, int b) {
    if (p->bufs[b].grad >= 0) return p->bufs[b].grad;
    tg_meta m;
    tg_meta_set(&m, p->bufs[b].dtype, p->bufs[b].ndim, p->bufs[b].shape);
    int g = new_buf(p, B_TEMP, &m);
    if (g < 0) return -1;
    p->bufs[b].grad = g;
    return g;
}

static tg_status not_replayable(tg_program *p, const char *what) {
    return prog_fail(p, tg_fail(TG_ERR_STATE, "capture: %s can't be captured into a program "
                                              "(run this step eagerly)", what));
}

/* ------------------------------------------------------------------ capture hooks */

void tg_capture_op(const tg_op_args *args, tg_tensor *const *in, tg_tensor *out,
                   tg_tensor *saved, tg_node *node) {
    tg_program *p = tls_capture;
    if (!p || p->state != 1) return;
    const tg_op_info *row = tg_op_rows[args->op];
    if (!row->check) {
        not_replayable(p, row->name);
        return;
    }
    pinstr *ins = new_ins(p, I_FWD);
    if (!ins) return;
    int idx = p->nins - 1;
    ins->op = args->op;
    ins->args = *args;
    for (int i = 0; i < args->n_in; i++) {
        if (!in[i]) continue;
        int b = buf_of_input(p, in[i]);
        if (b < 0) return;
        p->ins[idx].in[i] = b;
    }
    ins = &p->ins[idx];
    int ob;
    if (row->flags & TG_ROW_VIEW) {
        ob = new_buf(p, B_ALIAS, &args->out);
        if (ob < 0) return;
        p->bufs[ob].alias_of = p->ins[idx].in[0];
        p->bufs[ob].alias_off = (size_t)args->offset * tg_dtype_size(args->out.dtype);
    } else {
        ob = new_buf(p, B_TEMP, &args->out);
        if (ob < 0) return;
    }
    p->ins[idx].out = ob;
    if (map_add(p, out, ob) < 0) return;
    if (args->saved_numel) {
        tg_meta m;
        tg_meta_set(&m, args->out.dtype, 1, &args->saved_numel);
        int sb = new_buf(p, B_TEMP, &m);
        if (sb < 0) return;
        p->ins[idx].saved = sb;
    }
    (void)saved;
    if (node) node->capture_id = idx + 1;
}

void tg_capture_seed(tg_tensor *root, const tg_tensor *grad) {
    tg_program *p = tls_capture;
    if (!p || p->state != 1) return;
    if (grad) {
        not_replayable(p, "backward with an explicit gradient");
        return;
    }
    int b = map_find(p, root);
    if (b < 0 || !root->node) {
        not_replayable(p, "backward of a tensor the captured step did not compute");
        return;
    }
    int g = grad_of(p, b);
    if (g < 0) return;
    pinstr *ins = new_ins(p, I_FILL_ONE);
    if (ins) ins->buf = g;
}

/* A gradient slot of input i of node n was just made (zeroed) by eager backward, or is
 * about to be added into (a leaf's existing gradient). */
void tg_capture_slot(tg_node *n, int i, int created, int assign) {
    tg_program *p = tls_capture;
    if (!p || p->state != 1) return;
    if (p->pend_node != n) {
        p->pend_node = n;
        p->pend_assign = 0;
        for (int j = 0; j < TG_NODE_MAX_INPUTS; j++) p->pend_pfirst[j] = -1;
    }
    tg_tensor *t = n->inputs[i];
    if (!t->node) { /* a leaf: zeroed (or written whole) at first use if .grad is None then */
        int k = param_of(p, t);
        if (k < 0) return;
        if (tg_op_rows[n->op]->flags & TG_ROW_ASSIGN) {
            p->pend_pfirst[i] = k;
            return;
        }
        pinstr *ins = new_ins(p, I_PGRAD_FIRST);
        if (ins) ins->buf = k;
        return;
    }
    if (!created) return;
    if (assign) { /* the backward kernel writes the new slot whole */
        p->pend_assign |= 1u << i;
        return;
    }
    int b = map_find(p, t);
    if (b < 0) {
        not_replayable(p, "backward through a graph built before the capture began");
        return;
    }
    int g = grad_of(p, b);
    if (g < 0) return;
    pinstr *ins = new_ins(p, I_ZERO);
    if (ins) ins->buf = g;
}

void tg_capture_backward(tg_node *n) {
    tg_program *p = tls_capture;
    if (!p || p->state != 1) return;
    const tg_op_info *row = tg_op_rows[n->op];
    if (!row->backward_kernel || !n->capture_id) {
        not_replayable(p, n->capture_id ? row->name
                                        : "backward through a graph built before the capture began");
        return;
    }
    int f = n->capture_id - 1;
    pinstr *ins = new_ins(p, I_BWD);
    if (!ins) return;
    int idx = p->nins - 1;
    const pinstr *fw = &p->ins[f];
    if (p->pend_node == n) {
        ins->assign = p->pend_assign;
        memcpy(ins->pfirst, p->pend_pfirst, sizeof ins->pfirst);
        p->pend_node = NULL;
    }
    ins->op = n->op;
    ins->args = fw->args;
    memcpy(ins->in, fw->in, sizeof ins->in);
    ins->out = (row->saves & TG_SAVES_OUTPUT) ? fw->out : -1;
    ins->saved = fw->saved;
    int out = fw->out;
    int gout = grad_of(p, out);
    if (gout < 0) return;
    p->ins[idx].gout = gout;
    for (int i = 0; i < n->n_inputs; i++) {
        tg_tensor *t = n->inputs[i];
        if (!t || !t->requires_grad) continue;
        int b = p->ins[idx].in[i];
        int g;
        if (!t->node) {
            int k = param_of(p, t);
            if (k < 0) return;
            g = p->params[k].gbuf;
        } else {
            g = grad_of(p, b);
        }
        if (g < 0) return;
        p->ins[idx].gin[i] = g;
    }
}

void tg_capture_optim(tg_optim *o, int zero_grad, int set_to_none) {
    tg_program *p = tls_capture;
    if (!p || p->state != 1) return;
    int k;
    for (k = 0; k < p->noptims && p->optims[k] != o; k++) {}
    if (k == p->noptims) {
        if (p->noptims == (int)(sizeof p->optims / sizeof p->optims[0])) {
            not_replayable(p, "a step with more than 8 optimizers");
            return;
        }
        p->optims[p->noptims++] = o;
    }
    /* every parameter of the optimizer is one of the program's */
    for (int64_t i = 0; i < tg_optim_param_count(o); i++)
        if (param_of(p, tg_optim_param(o, i)) < 0) return;
    pinstr *ins = new_ins(p, zero_grad ? I_ZERO_GRAD : I_OPTIM);
    if (!ins) return;
    ins->opt = o;
    ins->flag = set_to_none;
}

/* ------------------------------------------------------------------ public API */

tg_program *tg_program_new(void) {
    tg_program *p = tg_calloc(1, sizeof *p);
    if (!p) {
        tg_fail(TG_ERR_NOMEM, "program: out of memory");
        return NULL;
    }
    p->inputs[0] = p->inputs[1] = -1;
    p->output = -1;
    return p;
}

static void drop_map(tg_program *p) {
    for (int i = 0; i < p->nmap; i++) tg_tensor_release(p->map[i].t);
    tg_free(p->map);
    p->map = NULL;
    p->nmap = p->cap_map = 0;
}

void tg_program_free(tg_program *p) {
    if (!p) return;
    if (tls_capture == p) tls_capture = NULL;
    drop_map(p);
    for (int i = 0; i < p->nbufs; i++)
        if (p->bufs[i].kind == B_EXT) tg_tensor_release(p->bufs[i].ext);
    for (int i = 0; i < p->nparams; i++) {
        tg_tensor_release(p->params[i].view);
        tg_tensor_release(p->params[i].tensor);
    }
    tg_tensor_release(p->arena);
    tg_free(p->bufs);
    tg_free(p->ins);
    tg_free(p->params);
    tg_free(p->grad_none);
    for (int o = 0; o < p->noptims; o++) tg_free(p->optmap[o]);
    tg_free(p);
}

tg_status tg_capture_begin(tg_program *p) {
    if (!p) return tg_fail(TG_ERR_ARG, "capture: program is NULL");
    if (p->state != 0)
        return tg_fail(TG_ERR_STATE, "capture: this program was already captured (make a new one)");
    if (tls_capture)
        return tg_fail(TG_ERR_STATE, "capture: this thread is already capturing a program");
    p->state = 1;
    tls_capture = p;
    return TG_OK;
}

tg_status tg_capture_input(tg_program *p, int slot, tg_tensor *t) {
    if (!p || !t) return tg_fail(TG_ERR_ARG, "capture_input: NULL argument");
    if (p->state == 3) return failed_earlier(p, "capture_input");
    if (p->state != 1 || tls_capture != p)
        return tg_fail(TG_ERR_STATE, "capture_input: the program is not capturing on this thread");
    if (slot < 0 || slot > 1) return tg_fail(TG_ERR_ARG, "capture_input: slot must be 0 or 1, got %d", slot);
    if (p->inputs[slot] >= 0) return tg_fail(TG_ERR_STATE, "capture_input: input %d was already declared", slot);
    if (t->ndim < 1)
        return tg_fail(TG_ERR_SHAPE, "capture_input: an input needs a first (batch) dimension");
    if (map_find(p, t) >= 0)
        return tg_fail(TG_ERR_STATE, "capture_input: declare inputs before the step uses them");
    int64_t rows = t->shape[0];
    if (p->inputs[1 - slot] >= 0 && rows != p->batch)
        return tg_fail(TG_ERR_SHAPE, "capture_input: inputs have %lld and %lld rows",
                       (long long)p->batch, (long long)rows);
    tg_meta m;
    tg_meta_of(t, &m);
    int b = new_buf(p, B_INPUT, &m);
    if (b < 0 || map_add(p, t, b) < 0) return prog_fail(p, TG_ERR_NOMEM);
    p->inputs[slot] = b;
    p->batch = rows;
    return TG_OK;
}

tg_status tg_capture_output(tg_program *p, tg_tensor *t) {
    if (!p || !t) return tg_fail(TG_ERR_ARG, "capture_output: NULL argument");
    if (p->state == 3) return failed_earlier(p, "capture_output");
    if (p->state != 1 || tls_capture != p)
        return tg_fail(TG_ERR_STATE, "capture_output: the program is not capturing on this thread");
    int b = map_find(p, t);
    if (b < 0)
        return tg_fail(TG_ERR_STATE, "capture_output: the output was not computed by the captured step");
    p->output = b;
    return TG_OK;
}

static void grads_in(tg_program *p);
static void grads_out(tg_program *p);

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static size_t buf_bytes(const pbuf *b) { return (size_t)b->numel * tg_dtype_size(b->dtype); }

/* A tensor viewing `bytes` of the arena at off, with b's dtype and shape. */
static tg_tensor *arena_view(tg_tensor *arena, const pbuf *b, size_t off) {
    tg_tensor *v = tg_tensor_view(arena, b->ndim, b->shape);
    if (!v) return NULL;
    v->dtype = b->dtype;
    v->numel = b->numel;
    v->data = (char *)arena->data + off;
    return v;
}

static void *resolve(tg_program *p, int b) {
    if (b < 0) return NULL;
    pbuf *x = &p->bufs[b];
    switch (x->kind) {
    case B_EXT: return x->ext->data;
    case B_ALIAS: return (char *)resolve(p, x->alias_of) + x->alias_off;
    default: return (char *)p->arena->data + x->arena_off;
    }
}

tg_status tg_capture_end(tg_program *p) {
    if (!p) return tg_fail(TG_ERR_ARG, "capture_end: program is NULL");
    if (tls_capture != p) return tg_fail(TG_ERR_STATE, "capture_end: the program is not capturing on this thread");
    tls_capture = NULL;
    drop_map(p);
    if (p->state != 1) return failed_earlier(p, "capture_end");
    /* plan: every planned buffer and the scratch in one arena */
    size_t total = 0, scratch = 0;
    for (int i = 0; i < p->nbufs; i++) {
        pbuf *b = &p->bufs[i];
        if (b->kind == B_TEMP || b->kind == B_INPUT || b->kind == B_PGRAD) {
            b->arena_off = total;
            total += align64(buf_bytes(b) ? buf_bytes(b) : 8);
        }
    }
    for (int i = 0; i < p->nins; i++) {
        const tg_op_args *a = &p->ins[i].args;
        size_t s = p->ins[i].kind == I_FWD ? a->fwd_scratch : p->ins[i].kind == I_BWD ? a->bwd_scratch : 0;
        if (s > scratch) scratch = s;
    }
    size_t scratch_off = total;
    total += align64(scratch) + 64;
    int64_t words = (int64_t)(total / 8);
    p->arena = tg_tensor_new(TG_FLOAT64, 1, &words, 1);
    if (!p->arena) return prog_fail(p, TG_ERR_NOMEM);
    /* 64-byte alignment of every buffer: shift the base */
    uintptr_t base = (uintptr_t)p->arena->data, aligned = (base + 63) & ~(uintptr_t)63;
    p->arena->data = (void *)aligned;
    p->scratch = scratch ? (char *)p->arena->data + scratch_off : NULL;
    p->scratch_bytes = scratch;
    p->grad_none = tg_calloc((size_t)(p->nparams ? p->nparams : 1), 1);
    if (!p->grad_none) return prog_fail(p, tg_fail(TG_ERR_NOMEM, "capture_end: out of memory"));
    /* parameter gradients: the arena's, holding the current .grad; .grad becomes a view
     * (or stays None) */
    for (int k = 0; k < p->nparams; k++) {
        pbuf *g = &p->bufs[p->params[k].gbuf];
        p->params[k].view = arena_view(p->arena, g, g->arena_off);
        if (!p->params[k].view) return prog_fail(p, TG_ERR_NOMEM);
    }
    grads_in(p);
    grads_out(p);
    for (int o = 0; o < p->noptims; o++) {
        int64_t n = tg_optim_param_count(p->optims[o]);
        p->optmap[o] = tg_malloc((size_t)(n ? n : 1) * sizeof(int));
        if (!p->optmap[o]) return prog_fail(p, tg_fail(TG_ERR_NOMEM, "capture_end: out of memory"));
        for (int64_t j = 0; j < n; j++) {
            p->optmap[o][j] = -1;
            for (int k = 0; k < p->nparams; k++)
                if (p->params[k].tensor == tg_optim_param(p->optims[o], j)) p->optmap[o][j] = k;
        }
    }
    for (int i = 0; i < p->nins; i++) { /* the optimizer's index in p->optims */
        pinstr *x = &p->ins[i];
        if (x->kind == I_ZERO_GRAD || x->kind == I_OPTIM)
            for (int o = 0; o < p->noptims; o++)
                if (p->optims[o] == x->opt) x->buf = o;
    }
    for (int i = 0; i < p->nbufs; i++) p->bufs[i].data = NULL;
    for (int i = 0; i < p->nbufs; i++) p->bufs[i].data = resolve(p, i);
    for (int i = 0; i < p->nins; i++) {
        pinstr *x = &p->ins[i];
        for (int k = 0; k < TG_NODE_MAX_INPUTS; k++) {
            x->fb.in[k] = x->bb.in[k] = x->in[k] >= 0 ? p->bufs[x->in[k]].data : NULL;
            x->bb.gin[k] = x->gin[k] >= 0 ? p->bufs[x->gin[k]].data : NULL;
        }
        x->fb.out = x->out >= 0 ? p->bufs[x->out].data : NULL;
        x->fb.saved = x->saved >= 0 ? p->bufs[x->saved].data : NULL;
        x->bb.saved = x->fb.saved;
        x->bb.out = x->kind == I_BWD && x->out >= 0 ? p->bufs[x->out].data : NULL;
        x->bb.gout = x->gout >= 0 ? p->bufs[x->gout].data : NULL;
        x->fb.scratch = x->bb.scratch = p->scratch;
        x->bb.assign = x->assign;
    }
    if (p->output < 0 && p->inputs[0] < 0)
        return prog_fail(p, tg_fail(TG_ERR_STATE, "capture_end: no input and no output declared"));
    p->state = 2;
    return TG_OK;
}

/* ------------------------------------------------------------------ running */

static tg_status check_array(const char *what, const tg_tensor *t, const pbuf *b, int64_t *rows) {
    char b1[TG_SHAPE_BUF], b2[TG_SHAPE_BUF];
    int ok = t->dtype == b->dtype && t->ndim == b->ndim;
    for (int d = 1; ok && d < b->ndim; d++) ok = t->shape[d] == b->shape[d];
    if (!ok)
        return tg_fail(TG_ERR_SHAPE,
                       "run: %s of shape %s (%s) does not match the captured step's input of shape "
                       "%s (%s) in everything but its first dimension",
                       what, tg_shape_str(t->ndim, t->shape, b1, sizeof b1), tg_dtype_name(t->dtype),
                       tg_shape_str(b->ndim, b->shape, b2, sizeof b2), tg_dtype_name(b->dtype));
    *rows = t->shape[0];
    return TG_OK;
}

/* The program's parameters are the model's as captured: same tensors, same storage. */
static tg_status check_params(tg_program *p) {
    for (int k = 0; k < p->nparams; k++) {
        pparam *pp = &p->params[k];
        if (pp->tensor->data != pp->data)
            return tg_fail(TG_ERR_STATE, "run: parameter %d (shape %lld...) was replaced or moved "
                           "since the capture (its data is elsewhere now); compile the step again",
                           k, (long long)(pp->tensor->ndim ? pp->tensor->shape[0] : 1));
    }
    for (int o = 0; o < p->noptims; o++) {
        tg_optim *opt = p->optims[o];
        for (int64_t i = 0; i < tg_optim_param_count(opt); i++) {
            tg_tensor *t = tg_optim_param(opt, i);
            int found = 0;
            for (int k = 0; k < p->nparams && !found; k++) found = p->params[k].tensor == t;
            if (!found)
                return tg_fail(TG_ERR_STATE, "run: the optimizer's parameters changed since the "
                                             "capture; compile the step again");
        }
    }
    return TG_OK;
}

/* Take the parameters' gradients over: .grad is None, the arena's view, or another
 * tensor of the same shape (its values are copied in). During the run every .grad is the
 * arena's view (the optimizer reads it there); grad_none keeps PyTorch's None, which
 * grads_out gives back. */
static void grads_in(tg_program *p) {
    for (int k = 0; k < p->nparams; k++) {
        pparam *pp = &p->params[k];
        tg_tensor *leaf = pp->tensor;
        tg_grad_lock(leaf);
        tg_tensor *g = leaf->grad;
        p->grad_none[k] = g == NULL;
        if (g != pp->view) { /* during the run .grad is the view (None: grad_none says so) */
            if (g)
                memcpy(pp->view->data, g->data,
                       (size_t)pp->view->numel * tg_dtype_size(pp->view->dtype));
            tg_tensor_retain(pp->view);
            leaf->grad = pp->view;
        } else {
            g = NULL; /* nothing to release */
        }
        tg_grad_unlock(leaf);
        tg_tensor_release(g);
    }
}

/* Give the gradients back: .grad is the arena's view, or None. */
static void grads_out(tg_program *p) {
    for (int k = 0; k < p->nparams; k++) {
        pparam *pp = &p->params[k];
        tg_tensor *leaf = pp->tensor;
        tg_grad_lock(leaf);
        tg_tensor *old = leaf->grad;
        leaf->grad = NULL;
        if (!p->grad_none[k]) {
            tg_tensor_retain(pp->view);
            leaf->grad = pp->view;
        }
        tg_grad_unlock(leaf);
        tg_tensor_release(old);
    }
}

/* Zeroing and the input gathers, split over the threads when large (bytes are bytes:
 * the same result for any split). */
static void zero_part(void *ctx, int64_t b0, int64_t b1) {
    memset((char *)ctx + b0, 0, (size_t)(b1 - b0));
}

static void zero_bytes(void *d, const pbuf *b) {
    const int64_t bytes = (int64_t)buf_bytes(b);
    tg_parallel_for(bytes, 4 * TG_PARALLEL_CHUNK, tg_parallel_threads(bytes / 4), zero_part, d);
}

typedef struct {
    char *dst;
    const char *src;
    const int64_t *idx;
    size_t rowbytes;
} gather_ctx;

static void gather_part(void *ctx, int64_t r0, int64_t r1) {
    const gather_ctx *c = ctx;
    for (int64_t r = r0; r < r1; r++)
        memcpy(c->dst + (size_t)r * c->rowbytes, c->src + (size_t)c->idx[r] * c->rowbytes,
               c->rowbytes);
}

/* dst's rows r = src's rows idx[r], r < batch */
static void gather_rows(char *dst, const char *src, const int64_t *idx, int64_t batch,
                        size_t rowbytes) {
    gather_ctx c = {dst, src, idx, rowbytes};
    const int64_t bytes = batch * (int64_t)rowbytes;
    const int64_t chunk = rowbytes ? (int64_t)(4 * (size_t)TG_PARALLEL_CHUNK / rowbytes) : batch;
    tg_parallel_for(batch, chunk, tg_parallel_threads(bytes / 4), gather_part, &c);
}

static void fill_one(void *d, const pbuf *b) {
    if (b->dtype == TG_FLOAT32)
        for (int64_t i = 0; i < b->numel; i++) ((float *)d)[i] = 1.0f;
    else
        for (int64_t i = 0; i < b->numel; i++) ((double *)d)[i] = 1.0;
}

/* One step; the failing validation's status, or TG_OK. */
static tg_status run_step(tg_program *p) {
    for (int i = 0; i < p->nins; i++) {
        pinstr *x = &p->ins[i];
        switch (x->kind) {
        case I_FWD: {
            const tg_op_info *row = tg_op_rows[x->op];
            if (row->validate && !x->flag) {
                tg_status st = row->validate(&x->args, x->fb.in);
                if (st) return st;
            }
            if (row->forward && !(row->flags & TG_ROW_VIEW)) row->forward(&x->args, &x->fb);
            break;
        }
        case I_BWD: {
            tg_bwd_bufs bb = x->bb;
            for (int j = 0; j < TG_NODE_MAX_INPUTS; j++) {
                const int k = x->pfirst[j];
                if (k >= 0 && p->grad_none[k]) { /* .grad None: this kernel writes it whole */
                    bb.assign |= 1u << j;
                    p->grad_none[k] = 0;
                }
            }
            tg_op_rows[x->op]->backward_kernel(&x->args, &bb);
            break;
        }
        case I_FILL_ONE: fill_one(p->bufs[x->buf].data, &p->bufs[x->buf]); break;
        case I_ZERO: zero_bytes(p->bufs[x->buf].data, &p->bufs[x->buf]); break;
        case I_PGRAD_FIRST:
            if (p->grad_none[x->buf]) {
                pbuf *g = &p->bufs[p->params[x->buf].gbuf];
                zero_bytes(g->data, g);
                p->grad_none[x->buf] = 0;
            }
            break;
        case I_ZERO_GRAD: {
            const int *map = p->optmap[x->buf];
            for (int64_t j = 0; j < tg_optim_param_count(x->opt); j++) {
                int k = map[j];
                if (x->flag) p->grad_none[k] = 1;
                else if (!p->grad_none[k]) {
                    pbuf *g = &p->bufs[p->params[k].gbuf];
                    zero_bytes(g->data, g);
                }
            }
            break;
        }
        case I_OPTIM: {
            tg_status st = tg_optim_step_replay(x->opt, p->optmap[x->buf], p->grad_none);
            if (st) return st;
            break;
        }
        }
    }
    return TG_OK;
}

static tg_status program_run(tg_program *p, const tg_tensor *x, const tg_tensor *y,
                             const tg_tensor *order, const tg_tensor *lr, tg_tensor *out);

tg_status tg_program_run(tg_program *p, const tg_tensor *x, const tg_tensor *y,
                         const tg_tensor *order, const tg_tensor *lr, tg_tensor *out) {
    if (!p) return tg_fail(TG_ERR_ARG, "run: program is NULL");
#if defined(_MSC_VER) && !defined(__clang__)
    int taken = _InterlockedCompareExchange((volatile long *)&p->running, 1, 0) == 0;
#else
    long idle = 0;
    int taken = __atomic_compare_exchange_n(&p->running, &idle, 1, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED);
#endif
    if (!taken)
        return tg_fail(TG_ERR_STATE, "run: this program is being run by another thread; run a "
                                     "program from one thread at a time");
    tg_status st = program_run(p, x, y, order, lr, out);
#if defined(_MSC_VER) && !defined(__clang__)
    _InterlockedExchange((volatile long *)&p->running, 0);
#else
    __atomic_store_n(&p->running, 0, __ATOMIC_RELEASE);
#endif
    return st;
}

static tg_status program_run(tg_program *p, const tg_tensor *x, const tg_tensor *y,
                             const tg_tensor *order, const tg_tensor *lr, tg_tensor *out) {
    if (p->state != 2) return tg_fail(TG_ERR_STATE, "run: the program was not captured successfully");
    if (tls_capture) return tg_fail(TG_ERR_STATE, "run: this thread is capturing a program");
    if (!order || order->dtype != TG_INT64 || order->ndim != 1)
        return tg_fail(TG_ERR_ARG, "run: order must be a 1-D int64 tensor of row indices");
    const tg_tensor *arr[2] = {x, y};
    int64_t rows[2] = {0, 0}, nrows = -1;
    for (int s = 0; s < 2; s++) {
        if (p->inputs[s] < 0) {
            if (arr[s]) return tg_fail(TG_ERR_ARG, "run: the step was captured without input %d", s);
            continue;
        }
        if (!arr[s]) return tg_fail(TG_ERR_ARG, "run: input %d is missing", s);
        tg_status st = check_array(s ? "y" : "X", arr[s], &p->bufs[p->inputs[s]], &rows[s]);
        if (st) return st;
        if (nrows >= 0 && rows[s] != nrows)
            return tg_fail(TG_ERR_SHAPE, "run: X has %lld rows and y %lld", (long long)nrows,
                           (long long)rows[s]);
        nrows = rows[s];
    }
    if (x && y && x->storage == y->storage && x->data == y->data)
        return tg_fail(TG_ERR_ARG, "run: X and y are the same buffer");
    int64_t batch = p->batch, n = order->numel;
    if (batch <= 0 || n % batch)
        return tg_fail(TG_ERR_SHAPE, "run: %lld row indices are not a whole number of batches of %lld",
                       (long long)n, (long long)batch);
    int64_t steps = n / batch;
    const int64_t *ord = order->data;
    for (int64_t i = 0; i < n; i++)
        if (ord[i] < 0 || ord[i] >= nrows)
            return tg_fail(TG_ERR_INDEX, "run: row index %lld at position %lld is out of range for "
                           "%lld rows", (long long)ord[i], (long long)i, (long long)nrows);
    if (lr && (lr->dtype != TG_FLOAT64 || lr->numel != steps))
        return tg_fail(TG_ERR_ARG, "run: lr must be a float64 tensor of one value per step (%lld)",
                       (long long)steps);
    const pbuf *ob = p->output >= 0 ? &p->bufs[p->output] : NULL;
    if (out && (!ob || out->dtype != ob->dtype || out->numel != steps * ob->numel))
        return tg_fail(TG_ERR_ARG, "run: out must hold the step's output (%lld %s values) for "
                       "each of the %lld steps", (long long)(ob ? ob->numel : 0),
                       ob ? tg_dtype_name(ob->dtype) : "(none captured)", (long long)steps);
    tg_status st = check_params(p);
    if (st) return st;
    /* class labels read straight from y: checked once for the run, over the rows it uses */
    for (int i = 0; i < p->nins; i++) {
        pinstr *xi = &p->ins[i];
        xi->flag = 0;
        if (xi->kind != I_FWD || xi->op != TG_OP_CROSS_ENTROPY || xi->in[1] < 0 ||
            xi->in[1] != p->inputs[1] || xi->args.in[1].ndim != 1)
            continue;
        const int64_t *lab = y->data, classes = xi->args.dims[1];
        for (int64_t k = 0; k < n; k++)
            if (lab[ord[k]] < 0 || lab[ord[k]] >= classes)
                return tg_fail(TG_ERR_INDEX, "run: cross_entropy: target %lld at row %lld of y "
                               "(step %lld of this run) is out of range for %lld classes",
                               (long long)lab[ord[k]], (long long)ord[k], (long long)(k / batch),
                               (long long)classes);
        xi->flag = 1;
    }
    for (int o = 0; o < p->noptims; o++)
        if ((st = tg_optim_prepare_replay(p->optims[o]))) return st;
    grads_in(p);
    size_t rowbytes[2] = {0, 0};
    for (int s = 0; s < 2; s++)
        if (p->inputs[s] >= 0) rowbytes[s] = buf_bytes(&p->bufs[p->inputs[s]]) / (size_t)batch;
    double lr0[8];
    for (int o = 0; o < p->noptims; o++) lr0[o] = tg_optim_get_lr(p->optims[o]);
    size_t osize = ob ? buf_bytes(ob) : 0;
    tg_simd_pin(tg_gemm_simd_level_now()); /* read the environment once for the run */
    for (int64_t s = 0; s < steps; s++) {
        for (int k = 0; k < 2; k++) {
            if (p->inputs[k] < 0) continue;
            gather_rows(p->bufs[p->inputs[k]].data, arr[k]->data, ord + s * batch, batch,
                        rowbytes[k]);
        }
        if (lr)
            for (int o = 0; o < p->noptims; o++) tg_optim_set_lr(p->optims[o], ((const double *)lr->data)[s]);
        st = run_step(p);
        if (st) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", tg_last_error());
            tg_fail(st, "run: step %lld of this run (0-based): %s", (long long)s, msg);
            break;
        }
        if (out) memcpy((char *)out->data + (size_t)s * osize, ob->data, osize);
    }
    tg_simd_pin(-1);
    if (lr)
        for (int o = 0; o < p->noptims; o++) tg_optim_set_lr(p->optims[o], lr0[o]);
    grads_out(p);
    return st;
}

tg_status tg_program_output(const tg_program *p, tg_tensor *dst) {
    if (!p || !dst) return tg_fail(TG_ERR_ARG, "program_output: NULL argument");
    if (p->state != 2 || p->output < 0) return tg_fail(TG_ERR_STATE, "program_output: no output");
    const pbuf *b = &p->bufs[p->output];
    if (dst->dtype != b->dtype || dst->numel != b->numel)
        return tg_fail(TG_ERR_SHAPE, "program_output: destination does not match the output");
    memcpy(dst->data, b->data, buf_bytes(b));
    return TG_OK;
}

int64_t tg_program_batch(const tg_program *p) { return p ? p->batch : 0; }
int64_t tg_program_instruction_count(const tg_program *p) { return p ? p->nins : 0; }

tg_status tg_capture_guard(const char *op, const tg_tensor *a, const tg_tensor *b) {
    tg_program *p = tls_capture;
    if (!p || p->state != 1) return TG_OK;
    const tg_tensor *t[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        if (!t[i]) continue;
        if (t[i]->requires_grad || map_find(p, t[i]) >= 0)
            return prog_fail(p, tg_fail(TG_ERR_STATE,
                                        "capture: '%s' can't be part of a captured step (a program "
                                        "would freeze its result at the captured value); compute "
                                        "it outside the step, or run this step eagerly", op));
    }
    return TG_OK;
}
