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

/* ------------------------------------------------------------------ storage & tensor */

typedef struct tg_storage {
    int64_t refcount;
    void *data;
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

/* One enum value per recorded op; every op-indexed table is checked against
 * TG_OP_COUNT with a static assert. */
typedef enum {
    TG_OP_ADD,
    TG_OP_SUB,
    TG_OP_MUL,
    TG_OP_DIV,
    TG_OP_ADD_SCALAR,
    TG_OP_MUL_SCALAR,
    TG_OP_RSUB_SCALAR,
    TG_OP_DIV_SCALAR,
    TG_OP_RDIV_SCALAR,
    TG_OP_POW_SCALAR,
    TG_OP_NEG,
    TG_OP_EXP,
    TG_OP_LOG,
    TG_OP_SIGMOID,
    TG_OP_TANH,
    TG_OP_RELU,
    TG_OP_MATMUL,
    TG_OP_LINEAR,
    TG_OP_SUM,
    TG_OP_MEAN,
    TG_OP_RESHAPE,
    TG_OP_TRANSPOSE,
    TG_OP_SOFTMAX,
    TG_OP_LOG_SOFTMAX,
    TG_OP_MSE_LOSS,
    TG_OP_BCE,
    TG_OP_BCE_LOGITS,
    TG_OP_CROSS_ENTROPY,
    TG_OP_POW,
    TG_OP_RPOW_SCALAR,
    TG_OP_CAST,
    TG_OP_SELECT,
    TG_OP_COUNT
} tg_op;

#define TG_NODE_MAX_INPUTS 3

/* A tape record: what backward needs to compute the gradients of an op's inputs. */
struct tg_node {
    int64_t refcount;
    tg_op op;
    int n_inputs;
    tg_tensor *inputs[TG_NODE_MAX_INPUTS]; /* strong refs; NULL entries allowed */
    tg_tensor *saved;                      /* op-specific saved tensor (e.g. the output) */
    double scalar;                         /* op-specific scalar (exponent, ...) */
    int iparam[4];                         /* op-specific ints (dim, keepdim, reduction) */
    int64_t offset;                        /* a view's element offset in its input */
    int64_t out_shape[TG_MAX_DIMS];
    int out_ndim;
    tg_tensor *grad; /* gradient of the output, accumulated during backward */
    int released;    /* backward ran without retain_graph */
    int64_t versions[TG_NODE_MAX_INPUTS]; /* inputs' storage versions when recorded */
    int mark;        /* scratch for graph traversal */
};

/* Backward of one op: reads node->grad and adds into the inputs' gradient slots. */
typedef tg_status (*tg_backward_fn)(tg_node *node);

/* What an op's backward reads besides the output gradient: bit i = input i's data,
 * TG_SAVES_OUTPUT = node->saved (a view of the output or private statistics). Backward
 * checks the storage versions of exactly these, so changing an input in place that
 * backward does not read (the addend of an add) is allowed, as in PyTorch. */
#define TG_SAVES_IN0 1u
#define TG_SAVES_IN1 2u
#define TG_SAVES_IN2 4u
#define TG_SAVES_OUTPUT 8u

typedef struct {
    const char *name;
    tg_backward_fn backward;
    unsigned saves;
} tg_op_info;

extern const tg_op_info tg_op_table[TG_OP_COUNT];

/* Backward functions, one per op, defined beside their forward in ops/. */
tg_status tg_binary_backward(tg_node *n);
tg_status tg_unary_backward(tg_node *n);
tg_status tg_matmul_backward(tg_node *n);
tg_status tg_linear_backward(tg_node *n);
tg_status tg_reduce_backward(tg_node *n);
tg_status tg_reshape_backward(tg_node *n);
tg_status tg_transpose_backward(tg_node *n);
tg_status tg_softmax_backward(tg_node *n);
tg_status tg_mse_backward(tg_node *n);
tg_status tg_bce_backward(tg_node *n);
tg_status tg_bce_logits_backward(tg_node *n);
tg_status tg_cross_entropy_backward(tg_node *n);
tg_status tg_cast_backward(tg_node *n);
tg_status tg_select_backward(tg_node *n);

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
/* Normalise dim into [0, ndim) or fail with TG_ERR_INDEX. */
tg_status tg_normalize_dim(const char *op, int ndim, int *dim);

/* View a's shape as (outer, len, inner) around dim: the layout reductions and softmax
 * walk along one dim. */
static inline void tg_split_dims(const tg_tensor *a, int dim, int64_t *outer, int64_t *len,
                                 int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= a->shape[d];
    for (int d = dim + 1; d < a->ndim; d++) *inner *= a->shape[d];
    *len = a->ndim ? a->shape[dim] : 1;
}

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

/* During backward: the buffer to add input i's gradient into (zero-initialised on first
 * use), or *out = NULL when input i needs no gradient. */
tg_status tg_grad_slot(tg_node *n, int i, void **out);

int tg_get_nthreads_internal(void);

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

#endif /* TG_INTERNAL_H */
