/* The cffi declarations: a hand-kept subset of csrc/include/tapegrad.h (pycparser
 * cannot read the real header: it has macros and comments). build_native.py compiles
 * the module with #include "tapegrad.h", so the compiler checks that both agree. */
#define TG_MAX_DIMS 8
typedef enum {
    TG_OK = 0,
    TG_ERR_SHAPE = 1,
    TG_ERR_DTYPE = 2,
    TG_ERR_NOMEM = 3,
    TG_ERR_ARG = 4,
    TG_ERR_STATE = 5,
    TG_ERR_INDEX = 6,
    TG_ERR_VALUE = 7
} tg_status;
tg_status tg_last_status(void);
const char *tg_last_error(void);
void tg_clear_error(void);
typedef enum {
    TG_FLOAT32 = 0,
    TG_FLOAT64 = 1,
    TG_INT64 = 2,
    TG_BOOL = 3, /* one byte, 0 or 1; made by comparisons */
    TG_DTYPE_COUNT = 4
} tg_dtype;
size_t tg_dtype_size(tg_dtype dtype);
const char *tg_dtype_name(tg_dtype dtype);
typedef struct tg_tensor tg_tensor;
tg_tensor *tg_zeros(tg_dtype dtype, int ndim, const int64_t *shape);
tg_tensor *tg_full(tg_dtype dtype, int ndim, const int64_t *shape, double value);
tg_tensor *tg_from_data(tg_dtype dtype, int ndim, const int64_t *shape, const void *data);
tg_tensor *tg_arange(tg_dtype dtype, double start, double step, int64_t n);
void tg_tensor_retain(tg_tensor *t);
void tg_tensor_release(tg_tensor *t);
tg_dtype tg_tensor_dtype(const tg_tensor *t);
int tg_tensor_ndim(const tg_tensor *t);
const int64_t *tg_tensor_shape(const tg_tensor *t);
int64_t tg_tensor_numel(const tg_tensor *t);
void *tg_tensor_data(tg_tensor *t);
tg_status tg_tensor_copy_to(const tg_tensor *t, void *out);
tg_status tg_tensor_copy_from(tg_tensor *t, const void *data);
tg_status tg_tensor_item(const tg_tensor *t, double *out);
int tg_tensor_requires_grad(const tg_tensor *t);
tg_status tg_tensor_set_requires_grad(tg_tensor *t, int requires_grad);
int tg_tensor_is_leaf(const tg_tensor *t);
const char *tg_tensor_op_name(const tg_tensor *t);
tg_tensor *tg_tensor_grad(const tg_tensor *t);
tg_status tg_tensor_set_grad(tg_tensor *t, tg_tensor *grad);
void tg_tensor_zero_grad(tg_tensor *t);
tg_tensor *tg_detach(tg_tensor *t);
int64_t tg_tensor_version(const tg_tensor *t);
tg_tensor *tg_select(tg_tensor *a, int64_t index);
tg_tensor *tg_narrow(tg_tensor *a, int64_t start, int64_t length);
tg_status tg_copy_(tg_tensor *dst, const tg_tensor *src);
tg_tensor *tg_to_dtype(tg_tensor *a, tg_dtype dtype);
typedef enum {
    TG_CMP_EQ = 0,
    TG_CMP_NE = 1,
    TG_CMP_LT = 2,
    TG_CMP_LE = 3,
    TG_CMP_GT = 4,
    TG_CMP_GE = 5
} tg_compare_op;
tg_tensor *tg_compare(tg_tensor *a, tg_tensor *b, tg_compare_op op);
tg_tensor *tg_clone_data(const tg_tensor *t);
tg_status tg_check_finite(const tg_tensor *t, const char *name);
int tg_set_grad_enabled(int enabled);
int tg_is_grad_enabled(void);
typedef struct tg_rng tg_rng;
tg_rng *tg_rng_new(uint64_t seed);
void tg_rng_free(tg_rng *rng);
void tg_rng_seed(tg_rng *rng, uint64_t seed);
tg_tensor *tg_rand(tg_rng *rng, tg_dtype dtype, int ndim, const int64_t *shape, double low,
                   double high);
tg_tensor *tg_randn(tg_rng *rng, tg_dtype dtype, int ndim, const int64_t *shape, double mean,
                    double std);
tg_status tg_rng_permutation(tg_rng *rng, int64_t n, int64_t *out);
tg_tensor *tg_add(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_add_scalar(tg_tensor *a, double s);
tg_tensor *tg_mul_scalar(tg_tensor *a, double s);
tg_tensor *tg_rsub_scalar(tg_tensor *a, double s);
tg_tensor *tg_div_scalar(tg_tensor *a, double s);
tg_tensor *tg_rdiv_scalar(tg_tensor *a, double s);
tg_tensor *tg_pow_scalar(tg_tensor *a, double s);
tg_tensor *tg_rpow_scalar(tg_tensor *a, double s);
tg_tensor *tg_pow(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_neg(tg_tensor *a);
tg_tensor *tg_exp(tg_tensor *a);
tg_tensor *tg_log(tg_tensor *a);
tg_tensor *tg_sigmoid(tg_tensor *a);
tg_tensor *tg_tanh(tg_tensor *a);
tg_tensor *tg_relu(tg_tensor *a);
tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_linear(tg_tensor *x, tg_tensor *w, tg_tensor *b);
tg_tensor *tg_sum(tg_tensor *a, int all_dims, int dim, int keepdim);
tg_tensor *tg_mean(tg_tensor *a, int all_dims, int dim, int keepdim);
tg_tensor *tg_reshape(tg_tensor *a, int ndim, const int64_t *shape);
tg_tensor *tg_transpose(tg_tensor *a, int dim0, int dim1);
tg_tensor *tg_softmax(tg_tensor *a, int dim);
tg_tensor *tg_log_softmax(tg_tensor *a, int dim);
typedef enum { TG_REDUCE_NONE = 0, TG_REDUCE_MEAN = 1, TG_REDUCE_SUM = 2 } tg_reduction;
tg_tensor *tg_mse_loss(tg_tensor *pred, tg_tensor *target, tg_reduction reduction);
tg_tensor *tg_binary_cross_entropy(tg_tensor *p, tg_tensor *target, tg_reduction reduction);
tg_tensor *tg_binary_cross_entropy_with_logits(tg_tensor *logits, tg_tensor *target,
                                               tg_reduction reduction);
tg_tensor *tg_cross_entropy(tg_tensor *logits, tg_tensor *labels, tg_reduction reduction);
tg_status tg_backward(tg_tensor *root, tg_tensor *grad, int retain_graph);
typedef struct tg_optim tg_optim;
tg_optim *tg_sgd_new(tg_tensor **params, int64_t n, double lr, double momentum,
                     double dampening, double weight_decay, int nesterov);
tg_optim *tg_adam_new(tg_tensor **params, int64_t n, double lr, double beta1, double beta2,
                      double eps, double weight_decay);
void tg_optim_free(tg_optim *opt);
tg_status tg_optim_step(tg_optim *opt);
void tg_optim_zero_grad(tg_optim *opt, int set_to_none);
tg_status tg_optim_set_lr(tg_optim *opt, double lr);
double tg_optim_get_lr(const tg_optim *opt);
int64_t tg_optim_steps(const tg_optim *opt);
tg_tensor *tg_optim_state(const tg_optim *opt, int64_t param_index, int which);
int64_t tg_optim_param_steps(const tg_optim *opt, int64_t param_index);
tg_status tg_optim_load_state(tg_optim *opt, int64_t param_index, int which,
                              const tg_tensor *src, int64_t param_steps);
void tg_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int trans_a,
                 const float *B, int64_t ldb, int trans_b, float *C, int64_t ldc,
                 int accumulate, int nthreads);
void tg_gemm_f64(int64_t M, int64_t N, int64_t K, const double *A, int64_t lda, int trans_a,
                 const double *B, int64_t ldb, int trans_b, double *C, int64_t ldc,
                 int accumulate, int nthreads);
tg_status tg_set_num_threads(int n);
int tg_get_num_threads(void);
int tg_op_count(void);
const char *tg_op_name(int op);
const char *tg_simd_level(void);
void tg_gemm_naive_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       int trans_a, const float *B, int64_t ldb, int trans_b, float *C,
                       int64_t ldc, int accumulate);
void tg_gemm_naive_f64(int64_t M, int64_t N, int64_t K, const double *A, int64_t lda,
                       int trans_a, const double *B, int64_t ldb, int trans_b, double *C,
                       int64_t ldc, int accumulate);
