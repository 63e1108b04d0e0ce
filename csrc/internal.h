/* internal.h — structures and helpers shared by the core's translation units.
 * Not part of the public API (tapegrad.h is). */
#ifndef TG_INTERNAL_H
#define TG_INTERNAL_H

#include "tapegrad.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

/* ------------------------------------------------------------------ reference counts */

/* Reference counts are atomic, so tensors that need no gradient (a dataset, constants)
 * can be inputs of graphs built by several threads at once: every op retains its inputs,
 * and a plain ++ from two threads loses counts (heap corruption). Increments need no
 * ordering; a decrement must see the other threads' writes before the object is freed
 * (acq_rel). TG_REF_DEC returns the new count. */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#define TG_REF_INC(p) ((void)_InterlockedIncrement64((volatile long long *)(p)))
#define TG_REF_DEC(p) ((int64_t)_InterlockedDecrement64((volatile long long *)(p)))
#else
#define TG_REF_INC(p) ((void)__atomic_add_fetch((p), 1, __ATOMIC_RELAXED))
#define TG_REF_DEC(p) __atomic_sub_fetch((p), 1, __ATOMIC_ACQ_REL)
#endif

/* ------------------------------------------------------------------ the allocator */

/* Every allocation of the core goes through these (never malloc/calloc/realloc/free
 * directly), so that tests can make the n-th one fail (tg_debug_fail_allocation) and
 * check the balance of allocations and frees (tg_debug_live_allocations). Same contract
 * as the C library's functions; tg_free(NULL) does nothing. tg_realloc of a non-NULL
 * pointer counts as an allocation (it may fail) but not as a new live block. The
 * counters are thread-local; off, a failure check costs one well-predicted branch. */
void *tg_malloc(size_t size);
void *tg_calloc(size_t count, size_t size);
void *tg_realloc(void *p, size_t size);
void tg_free(void *p);

/* ------------------------------------------------------------------ storage & tensor */

typedef struct tg_storage {
    int64_t refcount;
    void *data;   /* 64-byte aligned, inside block */
    void *block;  /* what the allocator returned (freed or cached by tensor.c) */
    size_t cap;   /* bytes usable from data: nbytes rounded up to the block's size class */
    size_t nbytes;
    /* Bumped (atomically) by every in-place write through the API (copy_, fills, optimizer
     * steps, tg_tensor_copy_from). Shared by every view of the storage. A record keeps the
     * versions of the tensors its backward reads; backward refuses a record whose inputs
     * changed since (PyTorch's version counter). */
    int64_t version;
} tg_storage;

typedef struct tg_node tg_node;

struct tg_tensor {
    int64_t refcount;
    tg_storage *storage; /* shared by reshape/detach views */
    void *data;          /* storage->data + offset: every tensor is contiguous, but a view
                          * (t[i], t[a:b]) may start inside its storage */
    tg_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t numel;
    int requires_grad;
    tg_node *node;   /* the record that made this tensor, or NULL for a leaf */
    tg_tensor *grad; /* accumulated gradient of a leaf */
    /* Guards `grad` (the pointer and the buffer's contents) against other threads: held
     * while a backward adds into this leaf's gradient and while the gradient is read,
     * replaced or zeroed (tg_grad_lock). 0 = free; zeroed with the tensor. */
    int grad_lock;
};

/* ------------------------------------------------------------------ the op table */

/* Every op, once: X(ENUM_SUFFIX, row) gives the enum value TG_OP_<ENUM_SUFFIX> and the
 * row tg_row_<row>, defined beside the op's kernels in ops/ (see "op rows" below).
 * Adding an op is one line here and its row with its kernels. The ops from EQ on carry
 * no gradient (comparisons, conversions to or from int64 / bool, integer sums, argmax,
 * int64 powers): rows without a backward kernel, never recorded on the tape, but run
 * through tg_apply like every op, so a captured step replays them. */
#define TG_OP_LIST(X) \
    X(ADD, add) \
    X(SUB, sub) \
    X(MUL, mul) \
    X(DIV, div) \
    X(ADD_SCALAR, add_scalar) \
    X(MUL_SCALAR, mul_scalar) \
    X(RSUB_SCALAR, rsub_scalar) \
    X(DIV_SCALAR, div_scalar) \
    X(RDIV_SCALAR, rdiv_scalar) \
    X(POW_SCALAR, pow_scalar) \
    X(NEG, neg) \
    X(EXP, exp) \
    X(LOG, log) \
    X(SIGMOID, sigmoid) \
    X(TANH, tanh) \
    X(RELU, relu) \
    X(MATMUL, matmul) \
    X(LINEAR, linear) \
    X(SUM, sum) \
    X(MEAN, mean) \
    X(RESHAPE, reshape) \
    X(TRANSPOSE, transpose) \
    X(SOFTMAX, softmax) \
    X(LOG_SOFTMAX, log_softmax) \
    X(MSE_LOSS, mse_loss) \
    X(BCE, bce) \
    X(BCE_LOGITS, bce_logits) \
    X(CROSS_ENTROPY, cross_entropy) \
    X(POW, pow) \
    X(RPOW_SCALAR, rpow_scalar) \
    X(CAST, cast) \
    X(SELECT, select) \
    X(EQ, eq) \
    X(NE, ne) \
    X(LT, lt) \
    X(LE, le) \
    X(GT, gt) \
    X(GE, ge) \
    X(TO_INT, to_int) \
    X(INT_SUM, int_sum) \
    X(ARGMAX, argmax) \
    X(ARGMIN, argmin) \
    X(INT_POW, int_pow)

typedef enum {
#define TG_OP_ENUM_(ID, row) TG_OP_##ID,
    TG_OP_LIST(TG_OP_ENUM_)
#undef TG_OP_ENUM_
    TG_OP_COUNT
} tg_op;

#define TG_NODE_MAX_INPUTS 3

/* A tape record: what backward needs to compute the gradients of an op's inputs. */
struct tg_node {
    int64_t refcount;
    tg_op op;
    int n_inputs;
    tg_tensor *inputs[TG_NODE_MAX_INPUTS]; /* strong refs; NULL entries allowed */
    tg_tensor *saved;                      /* a view of the output (TG_SAVES_OUTPUT), or a
                                            * legacy op's saved tensor */
    tg_tensor *priv;                       /* the private saved buffer of a row op */
    double scalar;                         /* legacy ops: op-specific scalar */
    int iparam[4];                         /* legacy ops: op-specific ints */
    int64_t offset;                        /* legacy ops: a view's element offset */
    int64_t out_shape[TG_MAX_DIMS];
    int out_ndim;
    struct tg_op_args *args;               /* a row op's arguments (owned), else NULL */
    tg_tensor *grad; /* gradient of the output, accumulated during backward */
    int released;    /* backward ran without retain_graph */
    int64_t versions[TG_NODE_MAX_INPUTS]; /* inputs' storage versions when recorded */
    /* The running backward that holds this record (an address unique to it), 0 when
     * none: a backward claims every record it reaches with a compare-and-swap, which also
     * marks it visited, and lets go of all of them when it ends. A backward that finds a
     * record claimed by another thread's backward fails (TG_ERR_STATE) instead of sharing
     * the record's gradient buffer and traversal state with it. */
    uintptr_t claim;
    int capture_id; /* 1 + the index of the captured instruction that made it, 0 none */
};

/* ------------------------------------------------------------------ op rows
 *
 * An op is one row (tg_op_rows in tape.c, each row defined beside its kernels): its name, a shape/dtype check, a forward
 * kernel, a backward kernel, a data-dependent validation, the scratch it needs and what
 * its backward reads. The check runs on shapes and dtypes only (tg_meta, no data, no
 * allocation) and fills a tg_op_args with everything the kernels need: the output's
 * meta, op-specific sizes, scratch and saved-buffer sizes. Kernels are plain functions
 * over the buffers they are given: the forward kernel writes its output (and a private
 * saved buffer), the backward kernel ADDS (+=) into the gradient buffers it is given
 * (NULL where an input needs no gradient). Kernels never allocate and never fail: every
 * check happened before. Eager mode is one generic path (tg_apply, ops/apply.c):
 * check -> validate -> allocate -> forward kernel -> record; a captured program
 * (program.c) runs the same kernels over buffers it planned once. */

/* Shape and dtype of an operand. */
typedef struct {
    tg_dtype dtype;
    int ndim;
    int64_t numel;
    int64_t shape[TG_MAX_DIMS];
} tg_meta;

/* numpy broadcasting of two operands: output shape and per-input strides (0 along
 * broadcast dims), aligned to the output (ops/broadcast.h computes it). */
typedef struct {
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t sa[TG_MAX_DIMS], sb[TG_MAX_DIMS];
    int64_t numel;
} tg_bcast;

/* Everything an op's kernels need besides the buffers. The op's public function sets
 * op, n_in and the parameters (scalar, iparam, offset); tg_apply fills in[] and present;
 * the row's check fills the rest. */
typedef struct tg_op_args {
    tg_op op;
    int n_in;         /* input slots of this call (1..TG_NODE_MAX_INPUTS) */
    unsigned present; /* bit i: input i is given (an absent bias is not) */
    tg_meta in[TG_NODE_MAX_INPUTS];
    tg_meta out;
    double scalar;          /* op-specific scalar (exponent, ...) */
    int iparam[4];          /* op-specific ints (dim, keepdim, reduction) */
    int64_t offset;         /* view ops: the output's element offset in input 0 */
    int64_t dims[4];        /* op-specific sizes set by check (m, k, n; outer, len, inner) */
    int64_t saved_numel;    /* elements (of out.dtype) of a private buffer the forward fills
                             * and the backward reads (cross-entropy's row statistics) */
    size_t fwd_scratch;     /* bytes of scratch the forward kernel needs */
    size_t bwd_scratch;     /* bytes of scratch the backward kernel needs */
    int nthreads;           /* threads the scratch was sized for (gemm rows; a kernel
                             * uses at most this many) */
    tg_bcast bc;            /* binary elementwise ops */
} tg_op_args;

typedef struct {
    const void *in[TG_NODE_MAX_INPUTS]; /* NULL for an absent input */
    void *out;
    void *saved;   /* args.saved_numel elements, or NULL */
    void *scratch; /* args.fwd_scratch bytes, 64-byte aligned, or NULL */
} tg_fwd_bufs;

typedef struct {
    const void *in[TG_NODE_MAX_INPUTS];
    const void *out;   /* the forward's output (rows with TG_SAVES_OUTPUT), else NULL */
    const void *saved; /* the private saved buffer, or NULL */
    const void *gout;  /* gradient of the output */
    void *gin[TG_NODE_MAX_INPUTS]; /* gradients to add into; NULL: not needed */
    void *scratch;     /* args.bwd_scratch bytes, 64-byte aligned, or NULL */
    /* Bit i: gin[i] is a gradient slot created for this step and not zeroed; the kernel
     * defines every element of it (writes instead of adding). Set only for rows with
     * TG_ROW_ASSIGN; other rows get zeroed slots and always add. */
    unsigned assign;
} tg_bwd_bufs;

/* Fill args (out, dims, sizes) from args->in, or fail with the thread's error set. */
typedef tg_status (*tg_check_fn)(tg_op_args *args);
/* Data-dependent checks (labels in range, targets in [0, 1]), kept apart from the
 * kernels so a replayed program can run them once per run or per step. */
typedef tg_status (*tg_validate_fn)(const tg_op_args *args, const void *const *in);
typedef void (*tg_forward_kernel)(const tg_op_args *args, const tg_fwd_bufs *b);
typedef void (*tg_backward_kernel)(const tg_op_args *args, const tg_bwd_bufs *b);

/* Legacy backward of an op not yet written as kernels: reads node->grad and adds into
 * the inputs' gradient slots (tg_grad_slot). */
typedef tg_status (*tg_backward_fn)(tg_node *node);

/* What an op's backward reads besides the output gradient: bit i = input i's data,
 * TG_SAVES_OUTPUT = the op's output. Backward checks the storage versions of exactly
 * these, so changing an input in place that backward does not read (the addend of an
 * add) is allowed, as in PyTorch. */
#define TG_SAVES_IN0 1u
#define TG_SAVES_IN1 2u
#define TG_SAVES_IN2 4u
#define TG_SAVES_OUTPUT 8u

/* Row flags. TG_ROW_VIEW: the output is a view of input 0 at args.offset (no forward
 * kernel runs; a program aliases the buffer). */
#define TG_ROW_VIEW 1u
/* TG_ROW_ASSIGN: the backward kernel honours tg_bwd_bufs.assign, so a fresh gradient slot
 * need not be zeroed first (one pass over it instead of two: the gemm rows write their
 * product with accumulate = 0). */
#define TG_ROW_ASSIGN 2u

typedef struct {
    const char *name;
    tg_backward_fn backward; /* legacy path, NULL for a row with kernels */
    unsigned saves;
    tg_check_fn check;
    tg_validate_fn validate;  /* NULL: no data-dependent check */
    tg_forward_kernel forward;
    tg_backward_kernel backward_kernel; /* NULL: not differentiable */
    unsigned flags;
} tg_op_info;

/* The eager path of a row op: check, validate, allocate, run the forward kernel and
 * record. in holds args->n_in tensors (NULL for an absent optional input). Returns a
 * new tensor, or NULL with the error set. */
tg_tensor *tg_apply(tg_op_args *args, tg_tensor *const *in);

/* Fill m from t. */
static inline void tg_meta_of(const tg_tensor *t, tg_meta *m) {
    m->dtype = t->dtype;
    m->ndim = t->ndim;
    m->numel = t->numel;
    for (int d = 0; d < t->ndim; d++) m->shape[d] = t->shape[d];
}

/* Set a meta's shape (numel computed). */
static inline void tg_meta_set(tg_meta *m, tg_dtype dtype, int ndim, const int64_t *shape) {
    m->dtype = dtype;
    m->ndim = ndim;
    m->numel = 1;
    for (int d = 0; d < ndim; d++) {
        m->shape[d] = shape[d];
        m->numel *= shape[d];
    }
}

/* The rows, each defined beside its kernels in ops/. */
#define TG_OP_ROW_DECL_(ID, row) extern const tg_op_info tg_row_##row;
TG_OP_LIST(TG_OP_ROW_DECL_)
#undef TG_OP_ROW_DECL_

/* tg_op_rows[op]: the row of an op (tape.c). */
extern const tg_op_info *const tg_op_rows[TG_OP_COUNT];

/* The generic backward step of a row op (ops/apply.c): its gradient slots, then its
 * backward kernel. */
tg_status tg_apply_backward(tg_node *n);

/* The backward kernel of the view rows (reshape, select; ops/views.c): gin[0] + offset
 * += gout, element by element. */
void tg_view_backward(const tg_op_args *args, const tg_bwd_bufs *b);


/* ------------------------------------------------------------------ helpers */

/* Set the thread's error (printf-style message) and return the status. */
tg_status tg_fail(tg_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* "(2, 3)" into buf. */
const char *tg_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);
#define TG_SHAPE_BUF 160

/* Allocate a contiguous tensor (zeroed when zero != 0); NULL with the error set. */
tg_tensor *tg_tensor_new(tg_dtype dtype, int ndim, const int64_t *shape, int zero);
/* A tensor of the same shape and dtype as t. */
tg_tensor *tg_tensor_new_like(const tg_tensor *t, int zero);
/* A new handle on t's storage with another shape (same numel), no node. */
tg_tensor *tg_tensor_view(tg_tensor *t, int ndim, const int64_t *shape);

/* Mark an in-place write into t's storage (bumps the version every view shares). */
static inline void tg_bump_version(tg_tensor *t) { TG_REF_INC(&t->storage->version); }
static inline int64_t tg_storage_version(const tg_tensor *t) {
#if defined(_MSC_VER) && !defined(__clang__)
    return *(volatile const int64_t *)&t->storage->version;
#else
    return __atomic_load_n(&t->storage->version, __ATOMIC_RELAXED);
#endif
}

/* Check an op's input is a floating tensor. */
tg_status tg_check_float(const char *op, const tg_tensor *t);
/* Check two inputs have the same dtype. */
tg_status tg_check_same_dtype(const char *op, const tg_tensor *a, const tg_tensor *b);
/* The same checks on metas (row checks). */
tg_status tg_check_float_meta(const char *op, const tg_meta *m);
tg_status tg_check_same_dtype_meta(const char *op, const tg_meta *a, const tg_meta *b);
/* Normalise dim into [0, ndim) or fail with TG_ERR_INDEX. */
tg_status tg_normalize_dim(const char *op, int ndim, int *dim);

/* View a's shape as (outer, len, inner) around dim: the layout reductions and softmax
 * walk along one dim. */
static inline void tg_split_dims(const tg_meta *a, int dim, int64_t *outer, int64_t *len,
                                 int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= a->shape[d];
    for (int d = dim + 1; d < a->ndim; d++) *inner *= a->shape[d];
    *len = a->ndim ? a->shape[dim] : 1;
}

/* The check shared by the reductions (sum, mean, int_sum, argmax, argmin): with iparam =
 * {all_dims, dim, keepdim}, normalise dim (iparam[1]), set the output's meta (of out_dtype:
 * the reduced dims dropped, or kept as size 1 when keepdim) and dims = {outer, len, inner},
 * the input viewed around the reduced dim (len = numel for all_dims). ops/reduce.c. */
tg_status tg_reduction_meta(const char *name, tg_op_args *args, tg_dtype out_dtype);

/* The per-tensor spinlock of `grad` (see struct tg_tensor). Cheap when uncontended (one
 * atomic exchange); a waiter spins briefly, then yields its CPU. Never held for long:
 * only around one op's gradient accumulation or a pointer swap. Locks of several
 * tensors are always taken in address order (tg_backward), so no two threads deadlock. */
void tg_grad_lock(tg_tensor *t);
void tg_grad_unlock(tg_tensor *t);

/* Whether an op with these inputs should record a node. */
int tg_should_record(const tg_tensor *a, const tg_tensor *b, const tg_tensor *c);
/* Make and attach a node to out (out->requires_grad = 1). Inputs are retained.
 * Returns the node, or NULL (error set; the caller releases out). */
tg_node *tg_record(tg_tensor *out, tg_op op, tg_tensor *a, tg_tensor *b, tg_tensor *c);

/* During backward: the buffer to add input i's gradient into, or *out = NULL when input i
 * needs no gradient. Created on first use: zeroed, or, when the row has TG_ROW_ASSIGN,
 * left as it is with *assign set (the kernel writes it whole); *assign is 0 otherwise. */
tg_status tg_grad_slot(tg_node *n, int i, void **out, int *assign);

int tg_get_nthreads_internal(void);

/* The check of the binary elementwise rows (ops/elementwise.c): same-dtype floats (int64
 * for add, sub, mul) with numpy broadcasting into args->bc; the output's meta. */
tg_status tg_binary_check(tg_op_args *args);

/* Runs fn(ctx, begin, end) over [0, n) in chunks of `chunk` elements on this thread and
 * up to nthreads - 1 of its gemm pool's workers, those awake to claim chunks (never
 * waiting for one to wake up); returns when all have run. With one thread (or no pool):
 * fn(ctx, 0, n) once. For elementwise work whose result does not depend on the split.
 * Defined in kernels/gemm.c, beside the pool. */
void tg_parallel_for(int64_t n, int64_t chunk, int nthreads,
                     void (*fn)(void *ctx, int64_t begin, int64_t end), void *ctx);
/* Elements (4-byte units for byte counts) from which an elementwise kernel is split over
 * threads, and its chunk size. */
#define TG_PARALLEL_MIN 65536
#define TG_PARALLEL_CHUNK 16384
/* The threads for elementwise work on n elements: this thread's setting from
 * TG_PARALLEL_MIN on, else 1. */
static inline int tg_parallel_threads(int64_t n) {
    return n >= TG_PARALLEL_MIN ? tg_get_nthreads_internal() : 1;
}

/* tg_tensor_set_grad without the capture guard (an optimizer's zero_grad, recorded by
 * the capture itself). */
tg_status tg_set_grad_internal(tg_tensor *t, tg_tensor *grad);

/* tg_sum of an int64 or bool tensor (ops/integer.c). */
tg_tensor *tg_int_sum(tg_tensor *a, int all_dims, int dim, int keepdim);

/* Elementwise generic loops over two dtypes: FLOAT_SWITCH(dtype, body) runs body with
 * the typedef `T` bound to float or double. */
#define TG_FLOAT_SWITCH(dt, ...)                                                          \
    do {                                                                                   \
        if ((dt) == TG_FLOAT32) {                                                          \
            typedef float T;                                                               \
            __VA_ARGS__                                                                    \
        } else {                                                                           \
            typedef double T;                                                              \
            __VA_ARGS__                                                                    \
        }                                                                                  \
    } while (0)

/* ------------------------------------------------------------------ capture (program.c)
 *
 * While a thread captures a program (tg_capture_begin), the eager paths report what they
 * do: tg_apply every op, tg_backward its seed and each record's backward step, tg_grad_slot
 * each gradient slot, the optimizers their zero_grad and step. Each hook is one
 * well-predicted branch when nothing is being captured. */
int tg_capture_active(void);
void tg_capture_op(const tg_op_args *args, tg_tensor *const *in, tg_tensor *out,
                   tg_tensor *saved, tg_node *node);
void tg_capture_seed(tg_tensor *root, const tg_tensor *grad);
void tg_capture_slot(tg_node *n, int i, int created, int assign);
void tg_capture_backward(tg_node *n);
void tg_capture_optim(tg_optim *o, int zero_grad, int set_to_none);
/* TG_ERR_STATE (named) when an op that a program can't replay reads or writes a tensor
 * the capture knows (or one that requires grad): its result would be frozen. */
tg_status tg_capture_guard(const char *op, const tg_tensor *a, const tg_tensor *b);

/* The optimizer's side of replay (optim.c). */
int64_t tg_optim_param_count(const tg_optim *o);
tg_tensor *tg_optim_param(const tg_optim *o, int64_t i);
tg_status tg_optim_prepare_replay(tg_optim *o);
/* One update inside a replayed run; parameter i has a gradient unless
 * grad_none[map[i]]. */
tg_status tg_optim_step_replay(tg_optim *o, const int *map, const uint8_t *grad_none);

#endif /* TG_INTERNAL_H */
