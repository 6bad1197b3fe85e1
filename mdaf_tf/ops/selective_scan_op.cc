// CPU kernels of the selective scan (MdafSelectiveScan) and of its gradient (MdafSelectiveScanGrad).
//
// Recurrence, per batch row b, channel d and state n (see mdaf_tf/ops/chunked_scan.py for the
// adjoint equations the backward kernel implements):
//   h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t,   y_t = C_t . h_t + D u_t
//
// Batch rows are split over TF's CPU worker threads. Each thread keeps the (d_inner x d_state)
// state of one row in a small buffer that stays in cache; the loop over d_state is the inner,
// vectorised one. The backward kernel stores the state at every kChunk-th step of a row, then for
// each chunk in reverse recomputes its states and decays and runs the adjoint recurrence. dA and
// dD are summed per thread and reduced under a mutex at the end; the other gradients belong to
// one (b, t) and need no synchronisation.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/blocking_counter.h"

namespace mdaf {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using Status = absl::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
// absl error constructors: TF 2.21 deprecates tensorflow::errors::InvalidArgument.
static inline absl::Status InvalidArgument(const char* msg) { return absl::InvalidArgumentError(msg); }
using tensorflow::shape_inference::InferenceContext;

constexpr int64_t kChunk = 16;

// exp for float that GCC vectorises: 2^k * p(r) with r = x - k ln2, |r| <= ln2/2, degree-6
// polynomial (relative error ~2e-7, below float rounding of the recurrence).
static inline float FastExp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float k = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union {
    int32_t i;
    float f;
  } scale;
  scale.i = (static_cast<int32_t>(k) + 127) << 23;
  return p * scale.f;
}
static inline double FastExp(double x) { return std::exp(x); }

struct Dims {
  int64_t batch, length, d_inner, d_state;
};

// Inner loops over d_state, on restrict pointers so GCC vectorises them. kN > 0 fixes the state
// count at compile time, so those loops become whole vectors with no loop overhead or remainder
// (forward 174 -> 141 ms at batch 2048, length 50, d_inner 256, d_state 16 on the 2-core
// machine); kN == 0 reads it from N.
template <int kN>
static inline int64_t StateCount(int64_t N) {
  return kN > 0 ? kN : N;
}

template <typename T, int kN>
static inline T StepForward(const T* __restrict A, const T* __restrict Bt, const T* __restrict Ct,
                            T* __restrict h, T dt, T dtu, int64_t N) {
  T acc = T(0);
  for (int64_t n = 0; n < StateCount<kN>(N); ++n) {
    const T hn = FastExp(dt * A[n]) * h[n] + dtu * Bt[n];
    h[n] = hn;
    acc += Ct[n] * hn;
  }
  return acc;
}

template <typename T, int kN>
static inline void StepState(const T* __restrict A, const T* __restrict Bt,
                             const T* __restrict h_prev, T* __restrict h, T* __restrict decay,
                             T dt, T dtu, int64_t N) {
  for (int64_t n = 0; n < StateCount<kN>(N); ++n) {
    const T a = FastExp(dt * A[n]);
    decay[n] = a;
    h[n] = a * h_prev[n] + dtu * Bt[n];
  }
}

template <typename T, int kN>
static inline void StepStateInPlace(const T* __restrict A, const T* __restrict Bt,
                                    T* __restrict h, T dt, T dtu, int64_t N) {
  for (int64_t n = 0; n < StateCount<kN>(N); ++n) h[n] = FastExp(dt * A[n]) * h[n] + dtu * Bt[n];
}

// One adjoint step for channel d; returns dh.B_t in *w and sum_n q A in *dd.
template <typename T, int kN>
static inline void StepAdjoint(const T* __restrict A, const T* __restrict Bt,
                               const T* __restrict Ct, const T* __restrict h_prev,
                               const T* __restrict h, const T* __restrict decay,
                               T* __restrict dh_next, T* __restrict dA, T* __restrict dBt,
                               T* __restrict dCt, T g, T dt, T dtu, int64_t N, T* w, T* dd) {
  T w_acc = T(0), dd_acc = T(0);
  for (int64_t n = 0; n < StateCount<kN>(N); ++n) {
    const T dh = g * Ct[n] + dh_next[n];
    const T q = dh * h_prev[n] * decay[n];
    w_acc += dh * Bt[n];
    dd_acc += q * A[n];
    dA[n] += q * dt;
    dBt[n] += dh * dtu;
    dCt[n] += g * h[n];
    dh_next[n] = decay[n] * dh;
  }
  *w = w_acc;
  *dd = dd_acc;
}

static Status CheckInputs(OpKernelContext* ctx, Dims* dims) {
  const Tensor& u = ctx->input(0);
  const Tensor& delta = ctx->input(1);
  const Tensor& A = ctx->input(2);
  const Tensor& B = ctx->input(3);
  const Tensor& C = ctx->input(4);
  const Tensor& D = ctx->input(5);
  if (u.dims() != 3 || A.dims() != 2 || B.dims() != 3 || C.dims() != 3 || D.dims() != 1) {
    return InvalidArgument("selective scan: u (b,L,d), A (d,N), B/C (b,L,N), D (d,) expected");
  }
  dims->batch = u.dim_size(0);
  dims->length = u.dim_size(1);
  dims->d_inner = u.dim_size(2);
  dims->d_state = A.dim_size(1);
  if (delta.shape() != u.shape()) return InvalidArgument("selective scan: delta shape != u shape");
  if (A.dim_size(0) != dims->d_inner || D.dim_size(0) != dims->d_inner) {
    return InvalidArgument("selective scan: A/D first dim != d_inner");
  }
  const TensorShape bn({dims->batch, dims->length, dims->d_state});
  if (B.shape() != bn || C.shape() != bn) {
    return InvalidArgument("selective scan: B/C must be (batch, length, d_state)");
  }
  return absl::OkStatus();
}

// Even shards of rows, one per worker thread (the calling thread runs the first). tf::Shard's
// cost model kept these kernels on one thread (measured: CPU time == wall time).
static void Parallel(OpKernelContext* ctx, int64_t rows, int64_t /*cost_per_row*/,
                     const std::function<void(int64_t, int64_t)>& work) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const int64_t shards = std::min<int64_t>(rows, std::max(1, workers->num_threads));
  if (shards <= 1) {
    work(0, rows);
    return;
  }
  tensorflow::BlockingCounter pending(static_cast<int>(shards - 1));
  for (int64_t s = 1; s < shards; ++s) {
    const int64_t begin = rows * s / shards, end = rows * (s + 1) / shards;
    workers->workers->Schedule([&work, &pending, begin, end] {
      work(begin, end);
      pending.DecrementCount();
    });
  }
  work(0, rows / shards);
  pending.Wait();
}

// Calls f(std::integral_constant<int, kN>) with kN = 16 (the model's d_state) when N is 16, else
// kN = 0 (the state count read at run time).
template <typename F>
static void WithStateCount(int64_t N, F&& f) {
  if (N == 16) {
    f(std::integral_constant<int, 16>());
  } else {
    f(std::integral_constant<int, 0>());
  }
}

static void ParallelOverBatch(OpKernelContext* ctx, const Dims& dims, int64_t cost_per_row,
                              const std::function<void(int64_t, int64_t)>& work) {
  Parallel(ctx, dims.batch, cost_per_row, work);
}

template <typename T>
class SelectiveScanOp : public OpKernel {
 public:
  explicit SelectiveScanOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    Dims dims;
    OP_REQUIRES_OK(ctx, CheckInputs(ctx, &dims));
    Tensor* y_tensor = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &y_tensor));
    const T* u = ctx->input(0).flat<T>().data();
    const T* delta = ctx->input(1).flat<T>().data();
    const T* A = ctx->input(2).flat<T>().data();
    const T* B = ctx->input(3).flat<T>().data();
    const T* C = ctx->input(4).flat<T>().data();
    const T* D = ctx->input(5).flat<T>().data();
    T* y = y_tensor->flat<T>().data();
    const int64_t L = dims.length, DI = dims.d_inner, N = dims.d_state;

    auto run = [&](auto state_count) {
      constexpr int kN = decltype(state_count)::value;
      auto work = [&](int64_t begin, int64_t end) {
        std::vector<T> h(DI * N);
        for (int64_t b = begin; b < end; ++b) {
          std::fill(h.begin(), h.end(), T(0));
          for (int64_t t = 0; t < L; ++t) {
            const int64_t bt = b * L + t;
            const T* Bt = B + bt * N;
            const T* Ct = C + bt * N;
            for (int64_t d = 0; d < DI; ++d) {
              const T dt = delta[bt * DI + d];
              const T du = dt * u[bt * DI + d];
              const T acc = StepForward<T, kN>(A + d * N, Bt, Ct, h.data() + d * N, dt, du, N);
              y[bt * DI + d] = acc + D[d] * u[bt * DI + d];
            }
          }
        }
      };
      ParallelOverBatch(ctx, dims, L * DI * N * 20, work);
    };
    WithStateCount(N, run);
  }
};

template <typename T>
class SelectiveScanGradOp : public OpKernel {
 public:
  explicit SelectiveScanGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    Dims dims;
    OP_REQUIRES_OK(ctx, CheckInputs(ctx, &dims));
    const Tensor& dy_tensor = ctx->input(6);
    OP_REQUIRES(ctx, dy_tensor.shape() == ctx->input(0).shape(),
                InvalidArgument("selective scan grad: dy shape != u shape"));
    Tensor* outs[6];
    for (int i = 0; i < 6; ++i) {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, ctx->input(i).shape(), &outs[i]));
    }
    const T* u = ctx->input(0).flat<T>().data();
    const T* delta = ctx->input(1).flat<T>().data();
    const T* A = ctx->input(2).flat<T>().data();
    const T* B = ctx->input(3).flat<T>().data();
    const T* C = ctx->input(4).flat<T>().data();
    const T* D = ctx->input(5).flat<T>().data();
    const T* dy = dy_tensor.flat<T>().data();
    T* du = outs[0]->flat<T>().data();
    T* ddelta = outs[1]->flat<T>().data();
    T* dA = outs[2]->flat<T>().data();
    T* dB = outs[3]->flat<T>().data();
    T* dC = outs[4]->flat<T>().data();
    T* dD = outs[5]->flat<T>().data();
    const int64_t L = dims.length, DI = dims.d_inner, N = dims.d_state;
    const int64_t S = DI * N;
    const int64_t num_chunks = (L + kChunk - 1) / kChunk;
    std::fill(dA, dA + S, T(0));
    std::fill(dD, dD + DI, T(0));
    std::mutex reduce_mutex;

    auto run = [&](auto state_count) {
      constexpr int kN = decltype(state_count)::value;
      auto work = [&](int64_t begin, int64_t end) {
        std::vector<T> checkpoints(num_chunks * S);  // state entering each chunk
        std::vector<T> states((kChunk + 1) * S);     // h_{t0-1} .. h_{t0+k-1} of one chunk
        std::vector<T> decays(kChunk * S);
        std::vector<T> dh_next(S), dA_local(S, T(0)), dD_local(DI, T(0));
        for (int64_t b = begin; b < end; ++b) {
          // Forward pass keeping only the chunk-entry states.
          std::fill(checkpoints.begin(), checkpoints.begin() + S, T(0));
          std::vector<T>& h = dh_next;  // reused as scratch for the forward
          std::fill(h.begin(), h.end(), T(0));
          for (int64_t t = 0; t < L; ++t) {
            if (t % kChunk == 0) std::memcpy(&checkpoints[(t / kChunk) * S], h.data(), S * sizeof(T));
            const int64_t bt = b * L + t;
            const T* Bt = B + bt * N;
            for (int64_t d = 0; d < DI; ++d) {
              const T dt = delta[bt * DI + d];
              const T dtu = dt * u[bt * DI + d];
              StepStateInPlace<T, kN>(A + d * N, Bt, h.data() + d * N, dt, dtu, N);
            }
          }
          std::fill(dh_next.begin(), dh_next.end(), T(0));
          for (int64_t c = num_chunks - 1; c >= 0; --c) {
            const int64_t t0 = c * kChunk;
            const int64_t k = std::min(kChunk, L - t0);
            std::memcpy(states.data(), &checkpoints[c * S], S * sizeof(T));
            for (int64_t i = 0; i < k; ++i) {
              const int64_t bt = b * L + t0 + i;
              const T* Bt = B + bt * N;
              for (int64_t d = 0; d < DI; ++d) {
                const T dt = delta[bt * DI + d];
                const T dtu = dt * u[bt * DI + d];
                const int64_t off = d * N;
                StepState<T, kN>(A + off, Bt, &states[i * S + off], &states[(i + 1) * S + off],
                             &decays[i * S + off], dt, dtu, N);
              }
            }
            for (int64_t i = k - 1; i >= 0; --i) {
              const int64_t bt = b * L + t0 + i;
              const T* Bt = B + bt * N;
              const T* Ct = C + bt * N;
              T* dBt = dB + bt * N;
              T* dCt = dC + bt * N;
              for (int64_t n = 0; n < N; ++n) dBt[n] = dCt[n] = T(0);
              for (int64_t d = 0; d < DI; ++d) {
                const int64_t idx = bt * DI + d;
                const T g = dy[idx], dt = delta[idx], ut = u[idx];
                const T dtu = dt * ut;
                const int64_t off = d * N;
                T w, dd;
                StepAdjoint<T, kN>(A + off, Bt, Ct, &states[i * S + off], &states[(i + 1) * S + off],
                               &decays[i * S + off], &dh_next[off], &dA_local[off], dBt, dCt, g, dt,
                               dtu, N, &w, &dd);
                du[idx] = g * D[d] + dt * w;
                ddelta[idx] = dd + ut * w;
                dD_local[d] += g * ut;
              }
            }
          }
        }
        std::lock_guard<std::mutex> lock(reduce_mutex);
        for (int64_t i = 0; i < S; ++i) dA[i] += dA_local[i];
        for (int64_t d = 0; d < DI; ++d) dD[d] += dD_local[d];
      };
      ParallelOverBatch(ctx, dims, L * DI * N * 60, work);
    };
    WithStateCount(N, run);
  }
};

static Status SameShapeAsInputs(InferenceContext* c, int count) {
  for (int i = 0; i < count; ++i) c->set_output(i, c->input(i));
  return absl::OkStatus();
}

REGISTER_OP("MdafSelectiveScan")
    .Input("u: T")
    .Input("delta: T")
    .Input("a: T")
    .Input("b: T")
    .Input("c: T")
    .Input("d: T")
    .Output("y: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return SameShapeAsInputs(c, 1); });

REGISTER_OP("MdafSelectiveScanGrad")
    .Input("u: T")
    .Input("delta: T")
    .Input("a: T")
    .Input("b: T")
    .Input("c: T")
    .Input("d: T")
    .Input("dy: T")
    .Output("du: T")
    .Output("ddelta: T")
    .Output("da: T")
    .Output("db: T")
    .Output("dc: T")
    .Output("dd: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return SameShapeAsInputs(c, 6); });

#define REGISTER_KERNELS(T)                                                                    \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("MdafSelectiveScan").Device(DEVICE_CPU).TypeConstraint<T>("T"), SelectiveScanOp<T>); \
  REGISTER_KERNEL_BUILDER(Name("MdafSelectiveScanGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          SelectiveScanGradOp<T>);

REGISTER_KERNELS(float)
REGISTER_KERNELS(double)


// ---------------------------------------------------------------------------------------------
// Fused kernels of the rest of the Mamba block's CPU path (MambaBlock with scan="fast").
//
// MdafCausalConvSilu: u = SiLU(bias + sum_j kernel[j] * x[t - (K-1) + j]) at valid positions,
// 0 elsewhere (x before time 0 is zero). MdafGatedScan: delta = softplus(dt + dt_bias) at valid
// positions (0 elsewhere), the selective scan with B = bc[..., :N], C = bc[..., N:], and
// out = (C.h + D u) * SiLU(z). The gradient kernels recompute the activations (pre-activation of
// the conv, softplus, C.h) instead of storing them, and vectorise over channels. MdafGatedScan's
// second output holds the state entering every chunk of kChunk steps, (batch, chunks, N d_inner),
// which its gradient kernel starts each chunk's recomputation from.

static inline float Sigmoid(float x) { return 1.0f / (1.0f + FastExp(-x)); }
static inline double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// softplus(x) = max(x, 0) + log1p(e), e = exp(-|x|) in (0, 1]; also returns sigmoid(x).
// log1p(e) = 2 atanh(s), s = e / (2 + e) <= 1/3: odd series to s^15 (relative error < 2e-9).
static inline float Softplus(float x, float* sig) {
  const float e = FastExp(-__builtin_fabsf(x));
  const float s = e / (2.0f + e);
  const float s2 = s * s;
  float p = 1.0f / 15;
  p = p * s2 + 1.0f / 13;
  p = p * s2 + 1.0f / 11;
  p = p * s2 + 1.0f / 9;
  p = p * s2 + 1.0f / 7;
  p = p * s2 + 1.0f / 5;
  p = p * s2 + 1.0f / 3;
  p = p * s2 + 1.0f;
  const float inv = 1.0f / (1.0f + e);
  *sig = x >= 0.0f ? inv : e * inv;
  return (x > 0.0f ? x : 0.0f) + 2.0f * s * p;
}
static inline double Softplus(double x, double* sig) {
  const double e = std::exp(-std::fabs(x));
  *sig = x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
  return (x > 0.0 ? x : 0.0) + std::log1p(e);
}

static Status CheckConvInputs(OpKernelContext* ctx, int64_t* batch, int64_t* length,
                              int64_t* channels, int64_t* width) {
  const Tensor& x = ctx->input(0);
  const Tensor& kernel = ctx->input(1);
  const Tensor& bias = ctx->input(2);
  const Tensor& valid = ctx->input(3);
  if (x.dims() != 3 || kernel.dims() != 2 || bias.dims() != 1 || valid.dims() != 2) {
    return InvalidArgument("causal conv: x (b,L,d), kernel (k,d), bias (d,), valid (b,L) expected");
  }
  *batch = x.dim_size(0);
  *length = x.dim_size(1);
  *channels = x.dim_size(2);
  *width = kernel.dim_size(0);
  if (kernel.dim_size(1) != *channels || bias.dim_size(0) != *channels) {
    return InvalidArgument("causal conv: kernel/bias channels != x channels");
  }
  if (valid.dim_size(0) != *batch || valid.dim_size(1) != *length) {
    return InvalidArgument("causal conv: valid must be (batch, length)");
  }
  return absl::OkStatus();
}


// Pre-activation of one position: acc = bias + sum_j kernel[j] * x[t - (K-1) + j].
template <typename T>
static inline void ConvAt(const T* __restrict x_row, const T* __restrict kernel,
                          const T* __restrict bias, T* __restrict acc, int64_t t, int64_t K,
                          int64_t E) {
  for (int64_t d = 0; d < E; ++d) acc[d] = bias[d];
  for (int64_t j = 0; j < K; ++j) {
    const int64_t s = t - (K - 1) + j;
    if (s < 0) continue;
    const T* __restrict xs = x_row + s * E;
    const T* __restrict kj = kernel + j * E;
    for (int64_t d = 0; d < E; ++d) acc[d] += kj[d] * xs[d];
  }
}

template <typename T>
class CausalConvSiluOp : public OpKernel {
 public:
  explicit CausalConvSiluOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    int64_t batch, L, E, K;
    OP_REQUIRES_OK(ctx, CheckConvInputs(ctx, &batch, &L, &E, &K));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &out));
    const T* x = ctx->input(0).flat<T>().data();
    const T* kernel = ctx->input(1).flat<T>().data();
    const T* bias = ctx->input(2).flat<T>().data();
    const bool* valid = ctx->input(3).flat<bool>().data();
    T* u = out->flat<T>().data();
    auto work = [&](int64_t begin, int64_t end) {
      std::vector<T> acc(E);
      for (int64_t b = begin; b < end; ++b) {
        const T* x_row = x + b * L * E;
        for (int64_t t = 0; t < L; ++t) {
          T* __restrict ut = u + (b * L + t) * E;
          if (!valid[b * L + t]) {
            std::fill(ut, ut + E, T(0));
            continue;
          }
          ConvAt<T>(x_row, kernel, bias, acc.data(), t, K, E);
          const T* __restrict a = acc.data();
          for (int64_t d = 0; d < E; ++d) ut[d] = a[d] * Sigmoid(a[d]);
        }
      }
    };
    Parallel(ctx, batch, L * E * (2 * K + 20), work);
  }
};

template <typename T>
class CausalConvSiluGradOp : public OpKernel {
 public:
  explicit CausalConvSiluGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    int64_t batch, L, E, K;
    OP_REQUIRES_OK(ctx, CheckConvInputs(ctx, &batch, &L, &E, &K));
    OP_REQUIRES(ctx, ctx->input(4).shape() == ctx->input(0).shape(),
                InvalidArgument("causal conv grad: du shape != x shape"));
    Tensor* outs[3];
    for (int i = 0; i < 3; ++i) {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, ctx->input(i).shape(), &outs[i]));
    }
    const T* x = ctx->input(0).flat<T>().data();
    const T* kernel = ctx->input(1).flat<T>().data();
    const T* bias = ctx->input(2).flat<T>().data();
    const bool* valid = ctx->input(3).flat<bool>().data();
    const T* du = ctx->input(4).flat<T>().data();
    T* dx = outs[0]->flat<T>().data();
    T* dkernel = outs[1]->flat<T>().data();
    T* dbias = outs[2]->flat<T>().data();
    std::fill(dkernel, dkernel + K * E, T(0));
    std::fill(dbias, dbias + E, T(0));
    std::mutex reduce_mutex;
    auto work = [&](int64_t begin, int64_t end) {
      std::vector<T> dpre(L * E), acc(E), dk_local(K * E, T(0)), db_local(E, T(0));
      for (int64_t b = begin; b < end; ++b) {
        const T* x_row = x + b * L * E;
        // dpre_t = du_t * SiLU'(a_t) at valid positions; SiLU'(a) = s (1 + a (1 - s)).
        for (int64_t t = 0; t < L; ++t) {
          T* __restrict g = dpre.data() + t * E;
          if (!valid[b * L + t]) {
            std::fill(g, g + E, T(0));
            continue;
          }
          ConvAt<T>(x_row, kernel, bias, acc.data(), t, K, E);
          const T* __restrict a = acc.data();
          const T* __restrict dut = du + (b * L + t) * E;
          T* __restrict dbl = db_local.data();
          for (int64_t d = 0; d < E; ++d) {
            const T s = Sigmoid(a[d]);
            g[d] = dut[d] * s * (T(1) + a[d] * (T(1) - s));
            dbl[d] += g[d];
          }
        }
        // dx_s = sum_j kernel[j] dpre_{s + K-1-j};  dkernel[j] += dpre_t x_{t - (K-1) + j}.
        for (int64_t s = 0; s < L; ++s) {
          T* __restrict dxs = dx + (b * L + s) * E;
          const T* __restrict xs = x_row + s * E;
          std::fill(dxs, dxs + E, T(0));
          for (int64_t j = 0; j < K; ++j) {
            const int64_t t = s + (K - 1) - j;
            if (t >= L) continue;
            const T* __restrict kj = kernel + j * E;
            const T* __restrict g = dpre.data() + t * E;
            T* __restrict dkj = dk_local.data() + j * E;
            for (int64_t d = 0; d < E; ++d) {
              dxs[d] += kj[d] * g[d];
              dkj[d] += g[d] * xs[d];
            }
          }
        }
      }
      std::lock_guard<std::mutex> lock(reduce_mutex);
      for (int64_t i = 0; i < K * E; ++i) dkernel[i] += dk_local[i];
      for (int64_t d = 0; d < E; ++d) dbias[d] += db_local[d];
    };
    Parallel(ctx, batch, L * E * (4 * K + 30), work);
  }
};

struct GatedDims {
  int64_t batch, length, d_inner, d_state;
};

// Inputs: u, dt, dt_bias, A, bc, D, z, valid.
static Status CheckGatedInputs(OpKernelContext* ctx, GatedDims* dims) {
  const Tensor& u = ctx->input(0);
  const Tensor& dt = ctx->input(1);
  const Tensor& dt_bias = ctx->input(2);
  const Tensor& A = ctx->input(3);
  const Tensor& bc = ctx->input(4);
  const Tensor& D = ctx->input(5);
  const Tensor& z = ctx->input(6);
  const Tensor& valid = ctx->input(7);
  if (u.dims() != 3 || A.dims() != 2 || bc.dims() != 3 || D.dims() != 1 || dt_bias.dims() != 1 ||
      valid.dims() != 2) {
    return InvalidArgument(
        "gated scan: u/dt/z (b,L,d), dt_bias (d,), A (d,N), bc (b,L,2N), D (d,), valid (b,L) "
        "expected");
  }
  dims->batch = u.dim_size(0);
  dims->length = u.dim_size(1);
  dims->d_inner = u.dim_size(2);
  dims->d_state = A.dim_size(1);
  if (dt.shape() != u.shape() || z.shape() != u.shape()) {
    return InvalidArgument("gated scan: dt/z shape != u shape");
  }
  if (A.dim_size(0) != dims->d_inner || D.dim_size(0) != dims->d_inner ||
      dt_bias.dim_size(0) != dims->d_inner) {
    return InvalidArgument("gated scan: A/D/dt_bias first dim != d_inner");
  }
  if (bc.shape() != TensorShape({dims->batch, dims->length, 2 * dims->d_state})) {
    return InvalidArgument("gated scan: bc must be (batch, length, 2 d_state)");
  }
  if (valid.dim_size(0) != dims->batch || valid.dim_size(1) != dims->length) {
    return InvalidArgument("gated scan: valid must be (batch, length)");
  }
  return absl::OkStatus();
}

// delta and sigmoid(dt + dt_bias) of one position, zero where invalid.
template <typename T>
static inline void DeltaRow(const T* __restrict dt, const T* __restrict bias, bool valid,
                            T* __restrict delta, T* __restrict sig, int64_t E) {
  if (!valid) {
    std::fill(delta, delta + E, T(0));
    std::fill(sig, sig + E, T(0));
    return;
  }
  for (int64_t d = 0; d < E; ++d) delta[d] = Softplus(dt[d] + bias[d], &sig[d]);
}

// The gated scan keeps its state channel-minor, h[n * d_inner + d], so that every inner loop runs
// over contiguous channels of one position (the layout of u, dt and z) without horizontal sums.
template <typename T>
static std::vector<T> Transposed(const T* A, int64_t E, int64_t N) {
  std::vector<T> at(N * E);
  for (int64_t d = 0; d < E; ++d)
    for (int64_t n = 0; n < N; ++n) at[n * E + d] = A[d * N + n];
  return at;
}

// One step of the state for all channels: h_new = exp(delta A) h_prev + delta u B_t; optional
// decay output and y = C_t . h_new.
template <typename T>
static inline void GatedStep(const T* __restrict At, const T* __restrict Bt,
                             const T* __restrict Ct, const T* __restrict delta,
                             const T* __restrict dtu, const T* h_prev, T* h, T* __restrict decay,
                             T* __restrict y, int64_t E, int64_t N) {
  if (y != nullptr) std::fill(y, y + E, T(0));
  for (int64_t n = 0; n < N; ++n) {
    const T* __restrict An = At + n * E;
    const T* __restrict hp = h_prev + n * E;
    T* __restrict hn = h + n * E;
    const T bn = Bt[n];
    if (decay != nullptr) {
      T* __restrict dn = decay + n * E;
      for (int64_t d = 0; d < E; ++d) {
        const T a = FastExp(delta[d] * An[d]);
        dn[d] = a;
        hn[d] = a * hp[d] + dtu[d] * bn;
      }
    } else {
      const T cn = Ct[n];
      for (int64_t d = 0; d < E; ++d) {
        const T v = FastExp(delta[d] * An[d]) * hp[d] + dtu[d] * bn;
        hn[d] = v;
        y[d] += cn * v;
      }
    }
  }
}

template <typename T>
class GatedScanOp : public OpKernel {
 public:
  explicit GatedScanOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    GatedDims dims;
    OP_REQUIRES_OK(ctx, CheckGatedInputs(ctx, &dims));
    const int64_t L = dims.length, E = dims.d_inner, N = dims.d_state;
    const int64_t num_chunks = (L + kChunk - 1) / kChunk;
    Tensor* out_tensor = nullptr;
    Tensor* ckpt_tensor = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &out_tensor));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({dims.batch, num_chunks, E * N}),
                                             &ckpt_tensor));
    T* checkpoints = ckpt_tensor->flat<T>().data();
    const T* u = ctx->input(0).flat<T>().data();
    const T* dt = ctx->input(1).flat<T>().data();
    const T* dt_bias = ctx->input(2).flat<T>().data();
    const T* bc = ctx->input(4).flat<T>().data();
    const T* D = ctx->input(5).flat<T>().data();
    const T* z = ctx->input(6).flat<T>().data();
    const bool* valid = ctx->input(7).flat<bool>().data();
    T* out = out_tensor->flat<T>().data();
    const std::vector<T> At = Transposed(ctx->input(3).flat<T>().data(), E, N);

    auto work = [&](int64_t begin, int64_t end) {
      std::vector<T> h(E * N), delta(E), sig(E), dtu(E), acc(E);
      for (int64_t b = begin; b < end; ++b) {
        std::fill(h.begin(), h.end(), T(0));
        for (int64_t t = 0; t < L; ++t) {
          if (t % kChunk == 0) {
            std::memcpy(checkpoints + (b * num_chunks + t / kChunk) * E * N, h.data(),
                        E * N * sizeof(T));
          }
          const int64_t bt = b * L + t;
          DeltaRow<T>(dt + bt * E, dt_bias, valid[bt], delta.data(), sig.data(), E);
          const T* __restrict ut = u + bt * E;
          for (int64_t d = 0; d < E; ++d) dtu[d] = delta[d] * ut[d];
          const T* Bt = bc + bt * 2 * N;
          GatedStep<T>(At.data(), Bt, Bt + N, delta.data(), dtu.data(), h.data(), h.data(),
                       nullptr, acc.data(), E, N);
          const T* __restrict zt = z + bt * E;
          const T* __restrict a = acc.data();
          T* __restrict ot = out + bt * E;
          for (int64_t d = 0; d < E; ++d) {
            ot[d] = (a[d] + D[d] * ut[d]) * zt[d] * Sigmoid(zt[d]);
          }
        }
      }
    };
    Parallel(ctx, dims.batch, L * E * (N * 20 + 40), work);
  }
};

template <typename T>
class GatedScanGradOp : public OpKernel {
 public:
  explicit GatedScanGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    GatedDims dims;
    OP_REQUIRES_OK(ctx, CheckGatedInputs(ctx, &dims));
    const int64_t num_chunks = (dims.length + kChunk - 1) / kChunk;
    const Tensor& ckpt_tensor = ctx->input(8);
    const Tensor& dout_tensor = ctx->input(9);
    OP_REQUIRES(ctx, dout_tensor.shape() == ctx->input(0).shape(),
                InvalidArgument("gated scan grad: dout shape != u shape"));
    OP_REQUIRES(ctx,
                ckpt_tensor.shape() ==
                    TensorShape({dims.batch, num_chunks, dims.d_inner * dims.d_state}),
                InvalidArgument("gated scan grad: checkpoints do not match the inputs"));
    const T* all_checkpoints = ckpt_tensor.flat<T>().data();
    // Gradients of u, dt, dt_bias, A, bc, D, z (input 7, valid, has none).
    Tensor* outs[7];
    for (int i = 0; i < 7; ++i) {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, ctx->input(i).shape(), &outs[i]));
    }
    const T* u = ctx->input(0).flat<T>().data();
    const T* dt_raw = ctx->input(1).flat<T>().data();
    const T* dt_bias = ctx->input(2).flat<T>().data();
    const T* bc = ctx->input(4).flat<T>().data();
    const T* D = ctx->input(5).flat<T>().data();
    const T* z = ctx->input(6).flat<T>().data();
    const bool* valid = ctx->input(7).flat<bool>().data();
    const T* dout = dout_tensor.flat<T>().data();
    T* du = outs[0]->flat<T>().data();
    T* ddt = outs[1]->flat<T>().data();
    T* ddt_bias = outs[2]->flat<T>().data();
    T* dA = outs[3]->flat<T>().data();
    T* dbc = outs[4]->flat<T>().data();
    T* dD = outs[5]->flat<T>().data();
    T* dz = outs[6]->flat<T>().data();
    const int64_t L = dims.length, E = dims.d_inner, N = dims.d_state;
    const int64_t S = E * N;
    const std::vector<T> At = Transposed(ctx->input(3).flat<T>().data(), E, N);
    std::fill(dA, dA + S, T(0));
    std::fill(dD, dD + E, T(0));
    std::fill(ddt_bias, ddt_bias + E, T(0));
    std::mutex reduce_mutex;

    auto work = [&](int64_t begin, int64_t end) {
      std::vector<T> states((kChunk + 1) * S);  // h_{t0-1} .. h_{t0+k-1} of one chunk
      std::vector<T> decays(kChunk * S);
      std::vector<T> deltas(kChunk * E), sigs(kChunk * E), dtus(kChunk * E);
      std::vector<T> dh_next(S), dA_local(S, T(0)), dD_local(E, T(0)), db_local(E, T(0));
      std::vector<T> g(E), w(E), dd(E), yc(E);
      for (int64_t b = begin; b < end; ++b) {
        // The forward op's states entering each chunk.
        const T* checkpoints = all_checkpoints + b * num_chunks * S;
        std::fill(dh_next.begin(), dh_next.end(), T(0));
        for (int64_t c = num_chunks - 1; c >= 0; --c) {
          const int64_t t0 = c * kChunk;
          const int64_t k = std::min(kChunk, L - t0);
          std::memcpy(states.data(), checkpoints + c * S, S * sizeof(T));
          for (int64_t i = 0; i < k; ++i) {
            const int64_t bt = b * L + t0 + i;
            T* delta = &deltas[i * E];
            T* dtu = &dtus[i * E];
            DeltaRow<T>(dt_raw + bt * E, dt_bias, valid[bt], delta, &sigs[i * E], E);
            const T* __restrict ut = u + bt * E;
            for (int64_t d = 0; d < E; ++d) dtu[d] = delta[d] * ut[d];
            const T* Bt = bc + bt * 2 * N;
            GatedStep<T>(At.data(), Bt, Bt + N, delta, dtu, &states[i * S], &states[(i + 1) * S],
                         &decays[i * S], nullptr, E, N);
          }
          for (int64_t i = k - 1; i >= 0; --i) {
            const int64_t bt = b * L + t0 + i;
            const T* Bt = bc + bt * 2 * N;
            const T* Ct = Bt + N;
            T* dBt = dbc + bt * 2 * N;
            T* dCt = dBt + N;
            const T* __restrict zt = z + bt * E;
            const T* __restrict ut = u + bt * E;
            const T* __restrict dot = dout + bt * E;
            const T* __restrict delta = &deltas[i * E];
            const T* __restrict dtu = &dtus[i * E];
            T* __restrict gp = g.data();
            T* __restrict wp = w.data();
            T* __restrict ddp = dd.data();
            T* __restrict ycp = yc.data();
            for (int64_t d = 0; d < E; ++d) {
              gp[d] = dot[d] * zt[d] * Sigmoid(zt[d]);
              wp[d] = ddp[d] = ycp[d] = T(0);
            }
            // Adjoint: dh = g C_t + a_{t+1} dh_{t+1}; q = dh h_{t-1} a_t (see chunked_scan.py).
            for (int64_t n = 0; n < N; ++n) {
              const T* __restrict An = At.data() + n * E;
              const T* __restrict hp = &states[i * S + n * E];
              const T* __restrict hc = &states[(i + 1) * S + n * E];
              const T* __restrict dec = &decays[i * S + n * E];
              T* __restrict dhn = &dh_next[n * E];
              T* __restrict dAn = &dA_local[n * E];
              const T bn = Bt[n], cn = Ct[n];
              T sum_b = T(0), sum_c = T(0);
              for (int64_t d = 0; d < E; ++d) {
                const T dh = gp[d] * cn + dhn[d];
                const T q = dh * hp[d] * dec[d];
                wp[d] += dh * bn;
                ddp[d] += q * An[d];
                dAn[d] += q * delta[d];
                sum_b += dh * dtu[d];
                sum_c += gp[d] * hc[d];
                ycp[d] += cn * hc[d];
                dhn[d] = dec[d] * dh;
              }
              dBt[n] = sum_b;
              dCt[n] = sum_c;
            }
            const T* __restrict sg = &sigs[i * E];
            T* __restrict dut = du + bt * E;
            T* __restrict ddtt = ddt + bt * E;
            T* __restrict dzt = dz + bt * E;
            T* __restrict dDl = dD_local.data();
            T* __restrict dbl = db_local.data();
            for (int64_t d = 0; d < E; ++d) {
              dut[d] = gp[d] * D[d] + delta[d] * wp[d];
              // sigs is 0 at invalid positions, where delta is the constant 0.
              const T dr = (ddp[d] + ut[d] * wp[d]) * sg[d];
              ddtt[d] = dr;
              dbl[d] += dr;
              dDl[d] += gp[d] * ut[d];
              const T s = Sigmoid(zt[d]);
              dzt[d] = dot[d] * (ycp[d] + D[d] * ut[d]) * s * (T(1) + zt[d] * (T(1) - s));
            }
          }
        }
      }
      std::lock_guard<std::mutex> lock(reduce_mutex);
      for (int64_t d = 0; d < E; ++d) {
        for (int64_t n = 0; n < N; ++n) dA[d * N + n] += dA_local[n * E + d];
        dD[d] += dD_local[d];
        ddt_bias[d] += db_local[d];
      }
    };
    Parallel(ctx, dims.batch, L * E * (N * 60 + 80), work);
  }
};

REGISTER_OP("MdafCausalConvSilu")
    .Input("x: T")
    .Input("kernel: T")
    .Input("bias: T")
    .Input("valid: bool")
    .Output("u: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return SameShapeAsInputs(c, 1); });

REGISTER_OP("MdafCausalConvSiluGrad")
    .Input("x: T")
    .Input("kernel: T")
    .Input("bias: T")
    .Input("valid: bool")
    .Input("du: T")
    .Output("dx: T")
    .Output("dkernel: T")
    .Output("dbias: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return SameShapeAsInputs(c, 3); });

REGISTER_OP("MdafGatedScan")
    .Input("u: T")
    .Input("dt: T")
    .Input("dt_bias: T")
    .Input("a: T")
    .Input("bc: T")
    .Input("d: T")
    .Input("z: T")
    .Input("valid: bool")
    .Output("out: T")
    .Output("checkpoints: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->UnknownShapeOfRank(3));
      return absl::OkStatus();
    });

REGISTER_OP("MdafGatedScanGrad")
    .Input("u: T")
    .Input("dt: T")
    .Input("dt_bias: T")
    .Input("a: T")
    .Input("bc: T")
    .Input("d: T")
    .Input("z: T")
    .Input("valid: bool")
    .Input("checkpoints: T")
    .Input("dout: T")
    .Output("du: T")
    .Output("ddt: T")
    .Output("ddt_bias: T")
    .Output("da: T")
    .Output("dbc: T")
    .Output("dd: T")
    .Output("dz: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return SameShapeAsInputs(c, 7); });

#define REGISTER_FUSED_KERNELS(T)                                                              \
  REGISTER_KERNEL_BUILDER(Name("MdafCausalConvSilu").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          CausalConvSiluOp<T>);                                                \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("MdafCausalConvSiluGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),                \
      CausalConvSiluGradOp<T>);                                                                \
  REGISTER_KERNEL_BUILDER(Name("MdafGatedScan").Device(DEVICE_CPU).TypeConstraint<T>("T"),     \
                          GatedScanOp<T>);                                                     \
  REGISTER_KERNEL_BUILDER(Name("MdafGatedScanGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          GatedScanGradOp<T>);

REGISTER_FUSED_KERNELS(float)
REGISTER_FUSED_KERNELS(double)

}  // namespace mdaf
