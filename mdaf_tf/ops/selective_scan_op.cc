// CPU kernels of the selective scan (MdafSelectiveScan) and of its gradient (MdafSelectiveScanGrad).
//
// Recurrence, per batch row b, channel d and state n (see mdaf_tf/ops/chunked_scan.py for the
// adjoint equations the backward kernel implements):
//   h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t,   y_t = C_t . h_t + D u_t
//
// Batch rows are split over TF's CPU worker threads; the state is kept channel-minor in blocks of
// one vector of channels (layout notes at kLanes). The forward kernel advances every block of a
// row by one step before the next step. The backward kernel takes a row's blocks two at a time:
// it recomputes their decays and states over a tile of kTile steps, keeping them, then runs the
// adjoint recurrence back through the tile, so each decay is evaluated once there and once in
// the forward kernel, and no (length x d_state) state is kept beyond a tile. dA and dD are summed
// per thread and reduced under a mutex at the end, dB and dC per row; the other gradients belong
// to one (b, t, d) and need no synchronisation.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
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

// 2^x for the scan's decays, whose exponent arrives pre-scaled by log2(e) (A is stored as
// A log2(e)), so the range reduction is a rounding: k = round(x) read from the low mantissa bits
// of x + 1.5 * 2^23, 2^(x - k) by a degree-5 minimax polynomial on [-1/2, 1/2] (relative error
// 9e-8 against float rounding's 6e-8), and k added straight into the exponent field: fewer
// instructions than FastExp, none of them a rounding. Written once for a float or a vector.
// An empty asm statement on v's register: the optimiser can no longer see its value.
template <typename F>
static inline void Opaque(F& v) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+x"(v));
#elif defined(__aarch64__)
  __asm__("" : "+w"(v));
#else
  __asm__("" : "+m"(v));
#endif
}

// kClamp = false when the caller knows that x is in [-kExp2Floor, 0] (InExp2Range).
template <typename F, typename I, bool kClamp>
static inline F FastExp2Lanes(F x) {
  if constexpr (kClamp) {
    const F lo = F{} - 126.0f, hi = F{} + 127.0f;
    x = x < lo ? lo : x;
    x = x > hi ? hi : x;
  }
  F shifted = x + 12582912.0f;
  Opaque(shifted);  // else -ffast-math folds (x + M) - M into x
  const F r = x - (shifted - 12582912.0f);  // one subtraction, not an int-to-float conversion
  // round(x) is the bits of shifted minus those of 1.5 * 2^23 (0x4B400000), and only its low 9
  // bits survive the shift into the exponent field below; 0x4B400000's are zero, so the
  // subtraction is left out.
  I k;
  std::memcpy(&k, &shifted, sizeof(k));
  // Estrin's scheme, 3 dependent steps instead of Horner's 5: the decays are bound by latency
  // (forward 78 -> 74 ms, backward's recomputing pass 72 -> 66 ms per thread, with Opaque above;
  // 68 ms when r came from converting k back to float).
  const F r2 = r * r;
  const F p01 = r * 6.9314700e-1f + 1.0f;
  const F p23 = r * 5.5507336e-2f + 2.4022242e-1f;
  const F p45 = r * 1.3264727e-3f + 9.6715130e-3f;
  F p = (p23 + r2 * p45) * r2 + p01;
  I bits;
  std::memcpy(&bits, &p, sizeof(bits));
  bits += k << 23;
  std::memcpy(&p, &bits, sizeof(p));
  return p;
}

struct Dims {
  int64_t batch, length, d_inner, d_state;
};

// The plain op's layout. Its inputs are channel-minor ((batch, length, d_inner) with d_inner
// contiguous), so the kernels keep the state channel-minor too and work on blocks of kLanes<T>
// channels, one AVX2 vector, looping over d_state outside the block: every sum over states is
// then a vertical vector add rather than a horizontal reduction. The blocks are written with GCC
// vector types (Pack below): left to itself, GCC's basic-block vectoriser dropped the fully
// unrolled block loops to scalar code for some exp polynomials (forward 120 ms vs 400 ms).
template <typename T>
constexpr int64_t kLanes = 32 / sizeof(T);

// W channels of T as one value: a GCC vector for a whole block, T itself for one channel.
template <typename T, int64_t W>
struct Pack {
  typedef T type __attribute__((vector_size(W * sizeof(T))));
};
template <typename T>
struct Pack<T, 1> {
  using type = T;
};
template <typename T, int64_t W>
using PackOf = typename Pack<T, W>::type;

template <typename P>
static inline P Load(const void* src) {
  P v;
  std::memcpy(&v, src, sizeof(P));
  return v;
}
template <typename P>
static inline void Store(void* dst, const P& v) {
  std::memcpy(dst, &v, sizeof(P));
}

template <typename T, int64_t W, bool kClamp>
static inline PackOf<T, W> Exp2Pack(PackOf<T, W> x) {
  if constexpr (std::is_same_v<T, float>) {
    if constexpr (W == 1) {
      return FastExp2Lanes<float, uint32_t, kClamp>(x);
    } else {
      typedef uint32_t Ints __attribute__((vector_size(W * sizeof(uint32_t))));
      return FastExp2Lanes<PackOf<float, W>, Ints, kClamp>(x);
    }
  } else {
    if constexpr (W == 1) {
      return std::exp2(x);
    } else {
      for (int64_t j = 0; j < W; ++j) x[j] = std::exp2(x[j]);
      return x;
    }
  }
}

// Steps per tile of the backward kernel: it keeps two blocks' decays and a_t h_{t-1} for a whole
// tile (2 x 2 x 64 x 16 x 32 bytes = 128 KB at d_state 16, in L2) so that each decay is evaluated
// once in the backward pass; longer sequences start each tile from a checkpointed state.
constexpr int64_t kTile = 64;

constexpr double kLog2e = 1.44269504088896340736;

// What every block of one batch row reads: u and delta ((L, d_inner)), B and C ((L, N)), D, A in
// the blocked layout (BlockedIndex), as is and times log2(e) (A2t, for the base-2 exp), and each
// channel's bound on delta for exponents that need no clamping (Exp2Limits).
template <typename T>
struct RowView {
  const T* u;
  const T* delta;
  const T* B;
  const T* C;
  const T* At;
  const T* A2t;
  const T* D;
  const T* delta_limit;  // per channel (Exp2Limits)
  int64_t L, DI, N;
};

// Index of (channel d, state n) in the kernels' layout of A and dA: each whole block of kLanes<T>
// channels holds its N vectors contiguously, (n, lane); the channels after the last whole block
// are one run of N each. Either way a block of W channels from d0 reads A[d0 N + n W + j], one
// contiguous N x W run (row-major (N, d_inner) put its N vectors d_inner apart: 4 of the 64 L1
// sets for all of them).
template <typename T>
static inline int64_t BlockedIndex(int64_t d, int64_t n, int64_t DI, int64_t N) {
  constexpr int64_t V = kLanes<T>;
  const int64_t whole = DI / V * V;
  return d < whole ? (d / V * N + n) * V + d % V : d * N + n;
}

template <typename T>
static std::vector<T> BlockedA(const T* A, int64_t DI, int64_t N, T scale) {
  std::vector<T> blocked(N * DI);
  for (int64_t d = 0; d < DI; ++d)
    for (int64_t n = 0; n < N; ++n) blocked[BlockedIndex<T>(d, n, DI, N)] = A[d * N + n] * scale;
  return blocked;
}

// The base-2 exponents delta A_n log2(e) of a channel all lie in [-kExp2Floor, 0] when no A_n is
// positive and 0 <= delta <= kExp2Floor / max_n |A_n log2(e)|: for a step of a block whose deltas
// all do, the exp skips its clamping (2 of its 13 vector instructions) with the same result.
// Forward 66 -> 58 ms and backward 138 -> 133 ms per thread at batch 2048, L 50, d_inner 256
// (with TileForward). The floor keeps 2^k a normal float after float rounding of the product.
constexpr float kExp2Floor = 125.0f;

// Per channel: the largest delta for which the exponents need no clamping, or -1 when A has a
// positive (or NaN) entry there (the clamped path then always runs).
template <typename T>
static std::vector<T> Exp2Limits(const T* A, int64_t DI, int64_t N) {
  std::vector<T> limits(DI);
  for (int64_t d = 0; d < DI; ++d) {
    T largest = T(0);
    bool negative = true;
    for (int64_t n = 0; n < N; ++n) {
      const T a = A[d * N + n] * T(kLog2e);
      negative = negative && a <= T(0);
      largest = std::max(largest, -a);
    }
    limits[d] = !negative ? T(-1) : largest > T(0) ? T(kExp2Floor) / largest
                                                   : std::numeric_limits<T>::max();
  }
  return limits;
}

// Whether every lane of delta is in [0, limit] (Exp2Limits). The double path always clamps (its
// exp is std::exp2).
template <typename T, int64_t W>
static inline bool InExp2Range(PackOf<T, W> delta, PackOf<T, W> limit) {
  if constexpr (!std::is_same_v<T, float>) {
    return false;
  } else if constexpr (W == 1) {
    return delta >= 0.0f && delta <= limit;
  } else {
    const auto inside = (delta >= 0.0f) & (delta <= limit);  // lanes of all ones or zeros
    bool all = true;
    for (int64_t j = 0; j < W; ++j) all = all && inside[j] != 0;
    return all;
  }
}

// kN > 0 fixes the state count at compile time (the model's 16), so that the loops over it unroll
// fully; kN == 0 reads it from N.
template <int kN>
static inline int64_t StateCount(int64_t N) {
  return kN > 0 ? kN : N;
}

// Calls f(std::integral_constant<int, kN>) with kN = 16 when N is 16, else kN = 0.
template <typename F>
static void WithStateCount(int64_t N, F&& f) {
  if (N == 16) {
    f(std::integral_constant<int, 16>());
  } else {
    f(std::integral_constant<int, 0>());
  }
}

// Forward over steps [t0, t1) of the block of W channels at d0; h (N packs) is updated in place.
// With decay and carried, keeps each step's a_t = exp(delta_t A) and a_t h_{t-1} (N packs per
// step, from the tile's first step; h_t is then a_t h_{t-1} + delta_t u_t B_t); else with y,
// writes C_t . h_t + D u_t; with neither, only advances h.
template <typename T, int64_t W, int kN>
__attribute__((always_inline)) static inline void BlockForward(
    const RowView<T>& row, int64_t d0, int64_t t0, int64_t t1, PackOf<T, W>* __restrict h,
    T* __restrict y, PackOf<T, W>* __restrict decay, PackOf<T, W>* __restrict carried) {
  using P = PackOf<T, W>;
  const int64_t DI = row.DI, N = StateCount<kN>(row.N);
  const P d_skip = Load<P>(row.D + d0);
  const P limit = Load<P>(row.delta_limit + d0);
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t off = t * DI + d0;
    const P dl = Load<P>(row.delta + off);
    const P ut = Load<P>(row.u + off);
    const P du = dl * ut;
    const T* __restrict Bt = row.B + t * N;
    const T* __restrict Ct = row.C + t * N;
    auto step = [&](auto clamp) {
      constexpr bool kClamp = decltype(clamp)::value;
      auto decay_at = [&](int64_t n) {
        return Exp2Pack<T, W, kClamp>(dl * Load<P>(row.A2t + d0 * N + n * W));
      };
      if (decay != nullptr) {
        P* __restrict dec = decay + (t - t0) * N;
        P* __restrict car = carried + (t - t0) * N;
        for (int64_t n = 0; n < N; ++n) {
          const P a = decay_at(n);
          const P c = a * h[n];
          h[n] = c + du * Bt[n];
          dec[n] = a;
          car[n] = c;
        }
      } else if (y != nullptr) {
        P acc = d_skip * ut;
        for (int64_t n = 0; n < N; ++n) {
          h[n] = decay_at(n) * h[n] + du * Bt[n];
          acc += h[n] * Ct[n];
        }
        Store(y + off, acc);
      } else {
        for (int64_t n = 0; n < N; ++n) h[n] = decay_at(n) * h[n] + du * Bt[n];
      }
    };
    if (InExp2Range<T, W>(dl, limit)) {
      step(std::false_type());
    } else {
      step(std::true_type());
    }
  }
}

// BlockForward over a tile for the backward kernel, kept out of line: inlined there, the backward
// pass measured 144 instead of 133 ms per thread (the forward kernel inlines it: 58 vs 66 ms).
template <typename T, int64_t W, int kN>
__attribute__((noinline)) static void TileForward(const RowView<T>& row, int64_t d0, int64_t t0,
                                                  int64_t t1, PackOf<T, W>* __restrict h,
                                                  PackOf<T, W>* __restrict decay,
                                                  PackOf<T, W>* __restrict carried) {
  BlockForward<T, W, kN>(row, d0, t0, t1, h, nullptr, decay, carried);
}

// Blocks whose adjoint runs side by side in the backward kernel (BlockBackward's kB).
constexpr int kPair = 2;

// Per-thread buffers of the backward kernel, in packs of kLanes<T> values (BlockBackward says
// how a single-channel block uses them).
template <typename T>
struct GradScratch {
  using P = PackOf<T, kLanes<T>>;
  std::vector<P> checkpoints, carried, decays, h, dh_next, dBv, dCv;
  std::vector<T> dA, dD;
  // The row's dy, du and ddelta in block order (GradLayout).
  std::vector<T> dy, du, ddelta;
  GradScratch(int64_t L, int64_t DI, int64_t N)
      : checkpoints(((L + kTile - 1) / kTile) * kPair * N),
        carried(kPair * kTile * N),
        decays(kPair * kTile * N),
        h(kPair * N),
        dh_next(kPair * N),
        dBv(L * N),
        dCv(L * N),
        dA(N * DI, T(0)),
        dD(DI, T(0)),
        dy(L * DI),
        du(L * DI),
        ddelta(L * DI) {}
};

// Where the backward kernel reads dy and writes du and ddelta for a block: element j of step t of
// its k-th block is at base + k * block_step + t * stride + j. The whole blocks use copies in
// block order, (d_inner / kLanes, L, kLanes), so that a block's steps are one contiguous run:
// read in place, d_inner values apart, dy came from memory one line per step into 4 of the 64
// L1 sets, and the adjoint took 90 instead of 58 ms per thread at batch 2048, L 50, d_inner 256
// (u and delta, already cached by the recomputing pass, read in place cost nothing extra).
template <typename T>
struct GradLayout {
  const T* dy;
  T* du;
  T* ddelta;
  int64_t stride, block_step;
};

// Gradients for kB adjacent blocks of W channels from channel d0 of one row. The blocks' decays
// are recomputed one block at a time over a tile; the adjoint then runs them side by side, so
// that the dB and dC sums over their channels cost one update of the lane-wide accumulators
// dBv/dCv ((L, N) packs, reduced by the caller once per row) per step and state for the kB
// blocks (two blocks: backward 156 -> 148 ms at batch 2048, L 50, d_inner 256).
template <typename T, int64_t W, int kB, int kN>
static void BlockBackward(const RowView<T>& row, int64_t d0, const GradLayout<T>& grads,
                          GradScratch<T>& s) {
  using P = PackOf<T, W>;
  using Wide = PackOf<T, kLanes<T>>;
  const int64_t L = row.L, DI = row.DI, N = StateCount<kN>(row.N);
  // The scratch buffers hold wide packs; a single-channel block (W = 1) packs its values densely
  // into them, except in dBv/dCv, where it uses lane 0 of each wide pack (kStride slots apart)
  // so that the per-row lane reduction covers it.
  constexpr int64_t kStride = kLanes<T> / W;
  auto view = [](std::vector<Wide>& buf) { return reinterpret_cast<P*>(buf.data()); };
  P* h = view(s.h);
  P* checkpoints = view(s.checkpoints);
  P* carried = view(s.carried);
  P* decays = view(s.decays);
  P* dh_next = view(s.dh_next);
  P* dBv = view(s.dBv);
  P* dCv = view(s.dCv);
  const int64_t tiles = (L + kTile - 1) / kTile;
  for (int64_t i = 0; i < kB * N; ++i) h[i] = P{};
  for (int64_t c = 0; c < tiles; ++c) {  // checkpoints[c]: the states entering tile c
    std::memcpy(checkpoints + c * kB * N, h, kB * N * sizeof(P));
    if (c + 1 == tiles) break;
    for (int k = 0; k < kB; ++k) {
      TileForward<T, W, kN>(row, d0 + k * W, c * kTile, (c + 1) * kTile, h + k * N, nullptr,
                            nullptr);
    }
  }
  for (int64_t i = 0; i < kB * N; ++i) dh_next[i] = P{};
  P d_skip[kB], dD_acc[kB];
  for (int k = 0; k < kB; ++k) {
    d_skip[k] = Load<P>(row.D + d0 + k * W);
    dD_acc[k] = P{};
  }
  for (int64_t c = tiles - 1; c >= 0; --c) {
    const int64_t t0 = c * kTile, t1 = std::min(L, t0 + kTile);
    std::memcpy(h, checkpoints + c * kB * N, kB * N * sizeof(P));
    for (int k = 0; k < kB; ++k) {
      TileForward<T, W, kN>(row, d0 + k * W, t0, t1, h + k * N, decays + k * kTile * N,
                            carried + k * kTile * N);
    }
    for (int64_t t = t1 - 1; t >= t0; --t) {
      const int64_t i = t - t0;
      P g[kB], dl[kB], ut[kB], dtu[kB], w[kB], dd[kB];
      const P* car[kB];
      const P* dec[kB];
      for (int k = 0; k < kB; ++k) {
        g[k] = Load<P>(grads.dy + k * grads.block_step + t * grads.stride);
        dl[k] = Load<P>(row.delta + t * DI + d0 + k * W);
        ut[k] = Load<P>(row.u + t * DI + d0 + k * W);
        dtu[k] = dl[k] * ut[k];
        w[k] = dd[k] = P{};
        car[k] = carried + (k * kTile + i) * N;
        dec[k] = decays + (k * kTile + i) * N;
      }
      const T* __restrict Bt = row.B + t * N;
      const T* __restrict Ct = row.C + t * N;
      P* __restrict dBt = dBv + t * N * kStride;
      P* __restrict dCt = dCv + t * N * kStride;
      for (int64_t n = 0; n < N; ++n) {
        P sum_b = P{}, sum_c = P{};
        for (int k = 0; k < kB; ++k) {
          const int64_t dk = d0 + k * W;
          // dh = dL/dh_t; q = dh a_t h_{t-1} = dL/d(delta_t A) (see chunked_scan.py).
          const P dh = g[k] * Ct[n] + dh_next[k * N + n];
          const P q = dh * car[k][n];
          w[k] += dh * Bt[n];
          dd[k] += q * Load<P>(row.At + dk * N + n * W);
          T* dAn = &s.dA[dk * N + n * W];
          Store(dAn, Load<P>(dAn) + q * dl[k]);
          sum_b += dh * dtu[k];
          sum_c += g[k] * (car[k][n] + dtu[k] * Bt[n]);
          dh_next[k * N + n] = dec[k][n] * dh;
        }
        dBt[n * kStride] += sum_b;
        dCt[n * kStride] += sum_c;
      }
      for (int k = 0; k < kB; ++k) {
        const int64_t at = k * grads.block_step + t * grads.stride;
        Store(grads.du + at, g[k] * d_skip[k] + dl[k] * w[k]);
        Store(grads.ddelta + at, dd[k] + ut[k] * w[k]);
        dD_acc[k] += g[k] * ut[k];
      }
    }
  }
  for (int k = 0; k < kB; ++k) {
    T* dDk = &s.dD[d0 + k * W];
    Store(dDk, Load<P>(dDk) + dD_acc[k]);
  }
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

// Copies the whole blocks of a (length, d_inner) row into block order, (d_inner / kLanes,
// length, kLanes), or back (GradLayout says why).
template <typename T>
static void ToBlocks(const T* __restrict row, T* __restrict blocks, int64_t L, int64_t DI) {
  constexpr int64_t V = kLanes<T>;
  for (int64_t t = 0; t < L; ++t)
    for (int64_t d0 = 0; d0 + V <= DI; d0 += V)
      std::memcpy(blocks + (d0 / V * L + t) * V, row + t * DI + d0, V * sizeof(T));
}
template <typename T>
static void FromBlocks(const T* __restrict blocks, T* __restrict row, int64_t L, int64_t DI) {
  constexpr int64_t V = kLanes<T>;
  for (int64_t t = 0; t < L; ++t)
    for (int64_t d0 = 0; d0 + V <= DI; d0 += V)
      std::memcpy(row + t * DI + d0, blocks + (d0 / V * L + t) * V, V * sizeof(T));
}

template <typename T>
static RowView<T> MakeRow(OpKernelContext* ctx, const Dims& dims, const std::vector<T>& At,
                          const std::vector<T>& A2t, const std::vector<T>& limits, int64_t b) {
  const int64_t L = dims.length, DI = dims.d_inner, N = dims.d_state;
  return RowView<T>{ctx->input(0).flat<T>().data() + b * L * DI,
                    ctx->input(1).flat<T>().data() + b * L * DI,
                    ctx->input(3).flat<T>().data() + b * L * N,
                    ctx->input(4).flat<T>().data() + b * L * N,
                    At.data(),
                    A2t.data(),
                    ctx->input(5).flat<T>().data(),
                    limits.data(),
                    L,
                    DI,
                    N};
}

// Runs f(d0, integral_constant<W>) over the channel blocks of a row: whole vectors of kLanes<T>,
// then the remaining channels one at a time.
template <typename T, typename F>
static inline void ForEachBlock(int64_t DI, F&& f) {
  constexpr int64_t V = kLanes<T>;
  int64_t d0 = 0;
  for (; d0 + V <= DI; d0 += V) f(d0, std::integral_constant<int64_t, V>());
  for (; d0 < DI; ++d0) f(d0, std::integral_constant<int64_t, 1>());
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
    const int64_t L = dims.length, DI = dims.d_inner, N = dims.d_state;
    const T* A = ctx->input(2).flat<T>().data();
    const std::vector<T> At = BlockedA<T>(A, DI, N, T(1));
    const std::vector<T> A2t = BlockedA<T>(A, DI, N, T(kLog2e));
    const std::vector<T> limits = Exp2Limits<T>(A, DI, N);
    T* y_all = y_tensor->flat<T>().data();
    WithStateCount(N, [&](auto state_count) {
      constexpr int kN = decltype(state_count)::value;
      auto work = [&](int64_t begin, int64_t end) {
        // The whole row's state, channels [d0, d0 + W) at h_row + d0 N. Unlike the backward kernel,
        // the forward steps every block at time t before moving to t + 1: reading u, delta and y
        // a whole row-step (d_inner contiguous values) at a time measured 80 vs 117 ms at batch
        // 2048, L 50, d_inner 256 (block after block strides through them).
        std::vector<PackOf<T, kLanes<T>>> h_wide((DI * N + kLanes<T> - 1) / kLanes<T>);
        T* h_row = reinterpret_cast<T*>(h_wide.data());
        for (int64_t b = begin; b < end; ++b) {
          const RowView<T> row = MakeRow<T>(ctx, dims, At, A2t, limits, b);
          T* y = y_all + b * L * DI;
          std::fill(h_row, h_row + DI * N, T(0));
          for (int64_t t = 0; t < L; ++t) {
            ForEachBlock<T>(DI, [&](int64_t d0, auto width) {
              constexpr int64_t W = decltype(width)::value;
              auto* h = reinterpret_cast<PackOf<T, W>*>(h_row + d0 * N);
              BlockForward<T, W, kN>(row, d0, t, t + 1, h, y, nullptr, nullptr);
            });
          }
        }
      };
      Parallel(ctx, dims.batch, L * DI * N * 20, work);
    });
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
    const int64_t L = dims.length, DI = dims.d_inner, N = dims.d_state;
    constexpr int64_t V = kLanes<T>;
    const T* A = ctx->input(2).flat<T>().data();
    const std::vector<T> At = BlockedA<T>(A, DI, N, T(1));
    const std::vector<T> A2t = BlockedA<T>(A, DI, N, T(kLog2e));
    const std::vector<T> limits = Exp2Limits<T>(A, DI, N);
    const T* dy = dy_tensor.flat<T>().data();
    T* du = outs[0]->flat<T>().data();
    T* ddelta = outs[1]->flat<T>().data();
    T* dA = outs[2]->flat<T>().data();
    T* dB = outs[3]->flat<T>().data();
    T* dC = outs[4]->flat<T>().data();
    T* dD = outs[5]->flat<T>().data();
    std::fill(dA, dA + DI * N, T(0));
    std::fill(dD, dD + DI, T(0));
    std::mutex reduce_mutex;
    WithStateCount(N, [&](auto state_count) {
      constexpr int kN = decltype(state_count)::value;
      auto work = [&](int64_t begin, int64_t end) {
        GradScratch<T> scratch(L, DI, N);
        for (int64_t b = begin; b < end; ++b) {
          const RowView<T> row = MakeRow<T>(ctx, dims, At, A2t, limits, b);
          const int64_t row_off = b * L * DI;
          std::fill(scratch.dBv.begin(), scratch.dBv.end(), PackOf<T, V>{});
          std::fill(scratch.dCv.begin(), scratch.dCv.end(), PackOf<T, V>{});
          ToBlocks(dy + row_off, scratch.dy.data(), L, DI);
          const int64_t whole = DI / V * V;
          auto blocked = [&](int64_t d0) {  // block d0 / V's run in the copies starts at d0 L
            return GradLayout<T>{scratch.dy.data() + d0 * L, scratch.du.data() + d0 * L,
                                 scratch.ddelta.data() + d0 * L, V, V * L};
          };
          int64_t d0 = 0;
          for (; d0 + kPair * V <= whole; d0 += kPair * V) {
            BlockBackward<T, V, kPair, kN>(row, d0, blocked(d0), scratch);
          }
          for (; d0 < whole; d0 += V) BlockBackward<T, V, 1, kN>(row, d0, blocked(d0), scratch);
          for (; d0 < DI; ++d0) {
            const GradLayout<T> in_place{dy + row_off + d0, du + row_off + d0,
                                         ddelta + row_off + d0, DI, 1};
            BlockBackward<T, 1, 1, kN>(row, d0, in_place, scratch);
          }
          FromBlocks(scratch.du.data(), du + row_off, L, DI);
          FromBlocks(scratch.ddelta.data(), ddelta + row_off, L, DI);
          for (int64_t i = 0; i < L * N; ++i) {
            T sum_b = T(0), sum_c = T(0);
            for (int64_t l = 0; l < V; ++l) {
              sum_b += scratch.dBv[i][l];
              sum_c += scratch.dCv[i][l];
            }
            dB[b * L * N + i] = sum_b;
            dC[b * L * N + i] = sum_c;
          }
        }
        std::lock_guard<std::mutex> lock(reduce_mutex);
        for (int64_t d = 0; d < DI; ++d) {
          for (int64_t n = 0; n < N; ++n) dA[d * N + n] += scratch.dA[BlockedIndex<T>(d, n, DI, N)];
          dD[d] += scratch.dD[d];
        }
      };
      Parallel(ctx, dims.batch, L * DI * N * 60, work);
    });
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
