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
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

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

// Inner loops over d_state, on restrict pointers so GCC vectorises them.
template <typename T>
static inline T StepForward(const T* __restrict A, const T* __restrict Bt, const T* __restrict Ct,
                            T* __restrict h, T dt, T dtu, int64_t N) {
  T acc = T(0);
  for (int64_t n = 0; n < N; ++n) {
    const T hn = FastExp(dt * A[n]) * h[n] + dtu * Bt[n];
    h[n] = hn;
    acc += Ct[n] * hn;
  }
  return acc;
}

template <typename T>
static inline void StepState(const T* __restrict A, const T* __restrict Bt,
                             const T* __restrict h_prev, T* __restrict h, T* __restrict decay,
                             T dt, T dtu, int64_t N) {
  for (int64_t n = 0; n < N; ++n) {
    const T a = FastExp(dt * A[n]);
    decay[n] = a;
    h[n] = a * h_prev[n] + dtu * Bt[n];
  }
}

template <typename T>
static inline void StepStateInPlace(const T* __restrict A, const T* __restrict Bt,
                                    T* __restrict h, T dt, T dtu, int64_t N) {
  for (int64_t n = 0; n < N; ++n) h[n] = FastExp(dt * A[n]) * h[n] + dtu * Bt[n];
}

// One adjoint step for channel d; returns dh.B_t in *w and sum_n q A in *dd.
template <typename T>
static inline void StepAdjoint(const T* __restrict A, const T* __restrict Bt,
                               const T* __restrict Ct, const T* __restrict h_prev,
                               const T* __restrict h, const T* __restrict decay,
                               T* __restrict dh_next, T* __restrict dA, T* __restrict dBt,
                               T* __restrict dCt, T g, T dt, T dtu, int64_t N, T* w, T* dd) {
  T w_acc = T(0), dd_acc = T(0);
  for (int64_t n = 0; n < N; ++n) {
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

static void ParallelOverBatch(OpKernelContext* ctx, const Dims& dims, int64_t cost_per_row,
                              const std::function<void(int64_t, int64_t)>& work) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, dims.batch, cost_per_row, work);
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
            const T acc = StepForward(A + d * N, Bt, Ct, h.data() + d * N, dt, du, N);
            y[bt * DI + d] = acc + D[d] * u[bt * DI + d];
          }
        }
      }
    };
    ParallelOverBatch(ctx, dims, L * DI * N * 20, work);
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
            StepStateInPlace<T>(A + d * N, Bt, h.data() + d * N, dt, dtu, N);
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
              StepState<T>(A + off, Bt, &states[i * S + off], &states[(i + 1) * S + off],
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
              StepAdjoint<T>(A + off, Bt, Ct, &states[i * S + off], &states[(i + 1) * S + off],
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

}  // namespace mdaf
