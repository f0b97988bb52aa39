// Time loops of the multiplicative cells (mLSTM, mGRU; Krause's form and the input form), forward
// and backward, for CPU tensors of float or double.
//
// seqcopy/fast.py does everything that is one big product over the whole sequence (the input
// projections before a loop, the weight gradients after it); here are only the steps that must run
// one after the other. Tensors are time-major, (T, B, ·), and contiguous. seqcopy/fast.py holds a
// Python twin of each function (same arguments, same results; it serves where this file cannot be
// built and for tensors on other devices); keep the two in step.
//
// Why raw loops rather than ATen ops (measured: bench/RESULTS.md, "Where the time went"):
// * Threads. Rows of a batch never meet inside a time loop, so the batch is cut into one block of
//   rows per thread and each thread runs the whole sequence for its block with single-threaded
//   products: the threads meet once per loop. Threading each small per-step product instead (what
//   MKL does when called with 2 threads) made every step wait for both cores, and a step took
//   longer with 2 threads than with 1 whenever the other core was busy.
// * Element-wise work. The gate maths of a step is one pass over the block (a vectorised exp for
//   float), where ATen ops made ~10 passes forward and ~17 backward, each with its own dispatch.
// * Products. Where torch carries MKL, sgemm/dgemm are called directly (no tensor per product);
//   elsewhere the same product goes through at::mm.
//
// Notation as in seqcopy/cells.py. σ'(z) = σ(1 - σ) and tanh'(z) = 1 - tanh², written in terms of
// the activated values that the forward keeps.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>  // pybind11 with the Tensor casters, lighter than torch/extension.h

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

using at::Tensor;

#if defined(__linux__) && defined(__GNUC__)
#define SEQCOPY_DIRECT_BLAS 1
// Fortran BLAS (LP64) as MKL exports it from libtorch_cpu. Weak: where the symbols are missing the
// module still loads and the products go through at::mm.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
            const float*, const int*, const float*, const int*, const float*, float*,
            const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
            const double*, const int*, const double*, const int*, const double*, double*,
            const int*) __attribute__((weak));
}
#else
#define SEQCOPY_DIRECT_BLAS 0
#endif

// The element-wise passes are compiled for AVX-512, AVX2 and the baseline, chosen at load time.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && \
    __GNUC__ >= 11
#define SEQCOPY_VECTORISED __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SEQCOPY_VECTORISED
#endif

namespace {

// --- Products -------------------------------------------------------------------------------

bool direct_blas() {
#if SEQCOPY_DIRECT_BLAS
  static const bool usable = at::hasMKL() && sgemm_ != nullptr && dgemm_ != nullptr;
  return usable;
#else
  return false;
#endif
}

// C = beta C + A op(W), all row-major: A is (m, k) with row stride lda, C is (m, n) with row stride
// ldc, and op(W) is W (k, n) or, with `transposed`, Wᵀ for W (n, k). BLAS is column-major, so it
// computes Cᵀ = op(W)ᵀ Aᵀ. With beta = 0, C is not read (it may hold garbage).
template <typename scalar_t>
void gemm(int64_t m, int64_t n, int64_t k, const scalar_t* a, int64_t lda, const scalar_t* w,
          int64_t ldw, bool transposed, scalar_t beta, scalar_t* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
#if SEQCOPY_DIRECT_BLAS
  if (direct_blas()) {
    const int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
    const int LDA = static_cast<int>(lda), LDW = static_cast<int>(ldw), LDC = static_cast<int>(ldc);
    const scalar_t one = 1;
    if constexpr (std::is_same_v<scalar_t, float>) {
      sgemm_(transposed ? "T" : "N", "N", &N, &M, &K, &one, w, &LDW, a, &LDA, &beta, c, &LDC);
    } else {
      dgemm_(transposed ? "T" : "N", "N", &N, &M, &K, &one, w, &LDW, a, &LDA, &beta, c, &LDC);
    }
    return;
  }
#endif
  const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<scalar_t>::value);
  auto* a_ = const_cast<scalar_t*>(a);
  auto* w_ = const_cast<scalar_t*>(w);
  const Tensor A = at::from_blob(a_, {m, k}, {lda, 1}, options);
  const Tensor W = transposed ? at::from_blob(w_, {n, k}, {ldw, 1}, options).t()
                             : at::from_blob(w_, {k, n}, {ldw, 1}, options);
  Tensor C = at::from_blob(c, {m, n}, {ldc, 1}, options);
  if (beta == 0) {
    at::mm_out(C, A, W);
  } else {
    C.addmm_(A, W, beta, 1);
  }
}

// --- Activations ----------------------------------------------------------------------------

// e^x for float to about 2 ulp in plain arithmetic that vectorises (Cephes' expf): x = n ln2 + r,
// |r| ≤ ln2/2, e^r by a polynomial, 2^n written into the exponent bits. NaN stays NaN.
inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return e * scale;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline float tanh_of(float x) { return 1.0f - 2.0f / (1.0f + exp_approx(2.0f * x)); }
inline double tanh_of(double x) { return std::tanh(x); }

// --- Element-wise passes over a block of rows ------------------------------------------------
// Each takes the row count, the width and, per operand, a pointer to the block's first row and
// that operand's row stride (0 for a vector shared by every row). No two operands overlap, and
// saying so (__restrict) is what lets the compiler vectorise loops over this many arrays.

template <typename T>
using In = const T* __restrict;
template <typename T>
using Out = T* __restrict;

// out = a ⊙ b
template <typename T>
SEQCOPY_VECTORISED void mul_rows(int64_t rows, int64_t width, Out<T> out, int64_t ldo, In<T> a,
                                 int64_t lda, In<T> b, int64_t ldb) {
  for (int64_t r = 0; r < rows; ++r) {
    Out<T> o = out + r * ldo;
    In<T> x = a + r * lda;
    In<T> y = b + r * ldb;
    for (int64_t j = 0; j < width; ++j) o[j] = x[j] * y[j];
  }
}

// LSTM step from the pre-activations pre + add (stacked i f g o): writes the activated gates
// [σ(i) σ(f) tanh(g) σ(o)], c = f c' + i g, tanh(c) and h = o tanh(c).
template <typename T>
SEQCOPY_VECTORISED void lstm_rows(int64_t rows, int64_t H, In<T> pre, int64_t ldp, In<T> add,
                                  int64_t ldadd, Out<T> gates, In<T> c_prev, Out<T> c, Out<T> tc,
                                  Out<T> h) {
  for (int64_t r = 0; r < rows; ++r) {
    In<T> z = pre + r * ldp;
    In<T> x = add + r * ldadd;
    In<T> cp = c_prev + r * H;
    Out<T> g = gates + r * 4 * H;
    Out<T> cn = c + r * H;
    Out<T> t = tc + r * H;
    Out<T> hn = h + r * H;
    for (int64_t j = 0; j < H; ++j) {
      const T i = sigmoid(z[j] + x[j]), f = sigmoid(z[H + j] + x[H + j]);
      const T u = tanh_of(z[2 * H + j] + x[2 * H + j]), o = sigmoid(z[3 * H + j] + x[3 * H + j]);
      g[j] = i, g[H + j] = f, g[2 * H + j] = u, g[3 * H + j] = o;
      const T cell = f * cp[j] + i * u, tanh_c = tanh_of(cell);
      cn[j] = cell, t[j] = tanh_c, hn[j] = o * tanh_c;
    }
  }
}

// LSTM step backward. dh holds dL/dh_t from the later steps; adds grad_out. From h = o tanh(c) and
// c = f c' + i g: dc += dh o (1 - tanh²c), dz_o = dh tanh(c) σ'(o), dz_i = dc g σ'(i),
// dz_f = dc c' σ'(f), dz_g = dc i (1 - g²), then dc' = dc f (left in dc).
template <typename T>
SEQCOPY_VECTORISED void lstm_backward_rows(int64_t rows, int64_t H, In<T> gates, In<T> tc,
                                           In<T> c_prev, In<T> grad_out, Out<T> dh, Out<T> dc,
                                           Out<T> dz, int64_t ldz) {
  for (int64_t r = 0; r < rows; ++r) {
    In<T> g = gates + r * 4 * H;
    In<T> t = tc + r * H;
    In<T> cp = c_prev + r * H;
    In<T> go = grad_out + r * H;
    Out<T> dhr = dh + r * H;
    Out<T> dcr = dc + r * H;
    Out<T> d = dz + r * ldz;
    for (int64_t j = 0; j < H; ++j) {
      const T i = g[j], f = g[H + j], u = g[2 * H + j], o = g[3 * H + j];
      const T dhj = dhr[j] + go[j], tj = t[j];
      const T dcj = dcr[j] + dhj * o * (1 - tj * tj);
      d[3 * H + j] = dhj * tj * o * (1 - o);
      d[j] = dcj * u * i * (1 - i);
      d[H + j] = dcj * cp[j] * f * (1 - f);
      d[2 * H + j] = dcj * i * (1 - u * u);
      dhr[j] = dhj, dcr[j] = dcj * f;
    }
  }
}

// Krause mGRU, after the r, z product: r, z = σ(rz + add) in place, s = r ⊙ m.
template <typename T>
SEQCOPY_VECTORISED void mgru_gate_rows(int64_t rows, int64_t H, Out<T> rz, In<T> add,
                                       int64_t ldadd, In<T> m, Out<T> s) {
  for (int64_t r = 0; r < rows; ++r) {
    Out<T> g = rz + r * 2 * H;
    In<T> x = add + r * ldadd;
    In<T> mr = m + r * H;
    Out<T> sr = s + r * H;
    for (int64_t j = 0; j < 2 * H; ++j) g[j] = sigmoid(g[j] + x[j]);
    for (int64_t j = 0; j < H; ++j) sr[j] = g[j] * mr[j];
  }
}

// Krause mGRU output: n = tanh(n + add) in place, h = n + z (h' - n), z the second half of rz.
template <typename T>
SEQCOPY_VECTORISED void mgru_output_rows(int64_t rows, int64_t H, Out<T> n, In<T> add,
                                         int64_t ldadd, In<T> rz, In<T> h_prev, Out<T> h) {
  for (int64_t r = 0; r < rows; ++r) {
    Out<T> nr = n + r * H;
    In<T> x = add + r * ldadd;
    In<T> z = rz + r * 2 * H + H;
    In<T> hp = h_prev + r * H;
    Out<T> hr = h + r * H;
    for (int64_t j = 0; j < H; ++j) {
      const T nj = tanh_of(nr[j] + x[j]);
      nr[j] = nj, hr[j] = nj + z[j] * (hp[j] - nj);
    }
  }
}

// Krause mGRU backward, first part: dh = dh' + grad_out; from h = (1 - z) n + z h':
// dz_n = dh (1 - z)(1 - n²), dz_z = dh (h' - n) σ'(z), and dh' = dh z, its direct part.
template <typename T>
SEQCOPY_VECTORISED void mgru_output_backward_rows(int64_t rows, int64_t H, In<T> grad_out, In<T> n,
                                                  In<T> rz, In<T> h_prev, Out<T> dz, int64_t ldz,
                                                  Out<T> dh_prev) {
  for (int64_t r = 0; r < rows; ++r) {
    In<T> go = grad_out + r * H;
    In<T> nr = n + r * H;
    In<T> z = rz + r * 2 * H + H;
    In<T> hp = h_prev + r * H;
    Out<T> d = dz + r * ldz;  // [dz_z dz_n]
    Out<T> dp = dh_prev + r * H;
    for (int64_t j = 0; j < H; ++j) {
      const T dh = dp[j] + go[j], nj = nr[j], zj = z[j];
      d[H + j] = dh * (1 - zj) * (1 - nj * nj);
      d[j] = dh * (hp[j] - nj) * zj * (1 - zj);
      dp[j] = dh * zj;
    }
  }
}

// Krause mGRU: from s = r ⊙ m, dz_r = ds m σ'(r) and dm = ds r.
template <typename T>
SEQCOPY_VECTORISED void mgru_reset_backward_rows(int64_t rows, int64_t H, In<T> ds, In<T> m,
                                                 In<T> rz, Out<T> dz_r, int64_t ldz, Out<T> dm) {
  for (int64_t r = 0; r < rows; ++r) {
    In<T> d = ds + r * H;
    In<T> mr = m + r * H;
    In<T> rr = rz + r * 2 * H;
    Out<T> dzr = dz_r + r * ldz;
    Out<T> dmr = dm + r * H;
    for (int64_t j = 0; j < H; ++j) {
      dzr[j] = d[j] * mr[j] * rr[j] * (1 - rr[j]);
      dmr[j] = d[j] * rr[j];
    }
  }
}

// Input form: m = U_m h' (in q) + W_m x + b_m (in pm), x̃ = m ⊙ x.
template <typename T>
SEQCOPY_VECTORISED void input_factor_rows(int64_t rows, int64_t E, In<T> q, int64_t ldq, In<T> pm,
                                          In<T> x, Out<T> m, Out<T> xt) {
  for (int64_t r = 0; r < rows; ++r) {
    In<T> qr = q + r * ldq;
    In<T> pr = pm + r * E;
    In<T> xr = x + r * E;
    Out<T> mr = m + r * E;
    Out<T> tr = xt + r * E;
    for (int64_t j = 0; j < E; ++j) {
      const T mj = qr[j] + pr[j];
      mr[j] = mj, tr[j] = mj * xr[j];
    }
  }
}

// Input form backward: from x̃ = m ⊙ x, dm = dx̃ x (into dq, beside the gates' gradients) and the
// direct part of dx, dx̃ m.
template <typename T>
SEQCOPY_VECTORISED void input_factor_backward_rows(int64_t rows, int64_t E, In<T> dxt, In<T> x,
                                                   In<T> m, Out<T> dm, int64_t lddm, Out<T> dx) {
  for (int64_t r = 0; r < rows; ++r) {
    In<T> d = dxt + r * E;
    In<T> xr = x + r * E;
    In<T> mr = m + r * E;
    Out<T> dmr = dm + r * lddm;
    Out<T> dxr = dx + r * E;
    for (int64_t j = 0; j < E; ++j) dmr[j] = d[j] * xr[j], dxr[j] = d[j] * mr[j];
  }
}

// Input-form GRU gates, torch's GRU on x̃: gi = W_ih x̃ and q = [W_hh h' | U_m h'] without biases.
// r, z = σ(gi + b_i + q + b_h), hn = q_n + b_hn, n = tanh(gi_n + b_in + r hn), h = n + z (h' - n);
// rzn receives [r z n].
template <typename T>
SEQCOPY_VECTORISED void gru_input_rows(int64_t rows, int64_t H, In<T> gi, In<T> q, int64_t ldq,
                                       In<T> b_ih, In<T> b_hh, In<T> h_prev, Out<T> rzn, Out<T> hn,
                                       Out<T> h) {
  for (int64_t r = 0; r < rows; ++r) {
    In<T> x = gi + r * 3 * H;
    In<T> qr = q + r * ldq;
    In<T> hp = h_prev + r * H;
    Out<T> g = rzn + r * 3 * H;
    Out<T> hnr = hn + r * H;
    Out<T> hr = h + r * H;
    for (int64_t j = 0; j < H; ++j) {
      const T rj = sigmoid(x[j] + b_ih[j] + qr[j] + b_hh[j]);
      const T zj = sigmoid(x[H + j] + b_ih[H + j] + qr[H + j] + b_hh[H + j]);
      const T hnj = qr[2 * H + j] + b_hh[2 * H + j];
      const T nj = tanh_of(x[2 * H + j] + b_ih[2 * H + j] + rj * hnj);
      g[j] = rj, g[H + j] = zj, g[2 * H + j] = nj, hnr[j] = hnj;
      hr[j] = nj + zj * (hp[j] - nj);
    }
  }
}

// Input-form GRU backward: dh = dh' + grad_out; dz_n = dh (1 - z)(1 - n²), dz_z = dh (h' - n) σ'(z),
// dz_r = dz_n hn σ'(r). dgi = [dz_r dz_z dz_n], the hidden side dq = [dz_r dz_z dz_n r], dh' = dh z.
template <typename T>
SEQCOPY_VECTORISED void gru_input_backward_rows(int64_t rows, int64_t H, In<T> grad_out, In<T> rzn,
                                                In<T> hn, In<T> h_prev, Out<T> dgi, Out<T> dq,
                                                int64_t ldq, Out<T> dh_prev) {
  for (int64_t r = 0; r < rows; ++r) {
    In<T> go = grad_out + r * H;
    In<T> g = rzn + r * 3 * H;
    In<T> hnr = hn + r * H;
    In<T> hp = h_prev + r * H;
    Out<T> di = dgi + r * 3 * H;
    Out<T> dqr = dq + r * ldq;
    Out<T> dp = dh_prev + r * H;
    for (int64_t j = 0; j < H; ++j) {
      const T rj = g[j], zj = g[H + j], nj = g[2 * H + j], dh = dp[j] + go[j];
      const T dn = dh * (1 - zj) * (1 - nj * nj), dz = dh * (hp[j] - nj) * zj * (1 - zj);
      const T dr = dn * hnr[j] * rj * (1 - rj);
      di[j] = dr, di[H + j] = dz, di[2 * H + j] = dn;
      dqr[j] = dr, dqr[H + j] = dz, dqr[2 * H + j] = dn * rj;
      dp[j] = dh * zj;
    }
  }
}

// --- Blocks of rows, one per thread -------------------------------------------------------------

constexpr int64_t kMinRowsPerThread = 4;  // below this a thread's products get too thin to pay

template <typename F>
void for_each_block(int64_t batch, const F& body) {
  at::parallel_for(0, batch, kMinRowsPerThread, body);
}

// Row b0 of slot `t` in a contiguous (slots, B, width) buffer.
template <typename scalar_t>
struct Seq {
  scalar_t* data;
  int64_t batch, width;
  Seq(const Tensor& tensor) : data(tensor.data_ptr<scalar_t>()), batch(tensor.size(1)), width(tensor.size(2)) {}
  scalar_t* at(int64_t t, int64_t b0) const { return data + (t * batch + b0) * width; }
};

// A (B, width) buffer's row b0.
template <typename scalar_t>
scalar_t* row(const Tensor& tensor, int64_t b0) {
  return tensor.data_ptr<scalar_t>() + b0 * tensor.size(1);
}

void check(std::initializer_list<Tensor> tensors) {
  for (const Tensor& tensor : tensors) {
    TORCH_CHECK(tensor.device().is_cpu() && tensor.is_contiguous(),
                "seqcopy kernels take contiguous CPU tensors");
    TORCH_CHECK(tensor.scalar_type() == tensors.begin()->scalar_type(), "seqcopy kernels: mixed dtypes");
  }
}

Tensor copy_of(const Tensor& tensor) { return at::empty(tensor.sizes(), tensor.options()).copy_(tensor); }

}  // namespace

// mLSTM (Krause) forward. p = [x_m | z_i z_f z_g z_o] (T, B, 5H): the input projections W_mx x_t
// and W_ix x_t + b_i, ... of every step. Returns hs (T+1, B, H) with hs[0] = h0, c_T, and when
// `save` the tensors the backward needs: cs (T+1, B, H), a = W_mh h_{t-1}, m, the activated gates
// [i f g o] and tanh(c_t). Without `save` those buffers hold one step and are overwritten.
std::vector<Tensor> mlstm_forward(const Tensor& p, const Tensor& h0, const Tensor& c0,
                                  const Tensor& w_mh, const Tensor& w_mg, bool save) {
  check({p, w_mh, w_mg});
  const int64_t T = p.size(0), B = p.size(1), H = h0.size(1), S = save ? T : 1;
  const auto options = p.options();
  Tensor hs = at::empty({T + 1, B, H}, options), cs = at::empty({save ? T + 1 : 2, B, H}, options);
  Tensor a = at::empty({S, B, H}, options), m = at::empty({S, B, H}, options);
  Tensor gates = at::empty({S, B, 4 * H}, options), tc = at::empty({S, B, H}, options);
  Tensor z = at::empty({B, 4 * H}, options);  // W_m m of one step
  hs[0].copy_(h0);
  cs[0].copy_(c0);
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "mlstm_forward", [&] {
    const Seq<scalar_t> P(p), Hs(hs), Cs(cs), A(a), M(m), G(gates), Tc(tc);
    const scalar_t *wmh = w_mh.data_ptr<scalar_t>(), *wmg = w_mg.data_ptr<scalar_t>();
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t* z_b = row<scalar_t>(z, b0);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t k = save ? t : 0;
        const scalar_t* p_t = P.at(t, b0);
        gemm<scalar_t>(rows, H, H, Hs.at(t, b0), H, wmh, H, true, 0, A.at(k, b0), H);  // a = W_mh h
        mul_rows(rows, H, M.at(k, b0), H, p_t, 5 * H, A.at(k, b0), H);            // m = (W_mx x) ⊙ a
        gemm<scalar_t>(rows, 4 * H, H, M.at(k, b0), H, wmg, H, true, 0, z_b, 4 * H);  // W_m m
        lstm_rows(rows, H, z_b, 4 * H, p_t + H, 5 * H, G.at(k, b0),
                  Cs.at(save ? t : t & 1, b0), Cs.at(save ? t + 1 : (t + 1) & 1, b0), Tc.at(k, b0),
                  Hs.at(t + 1, b0));
      }
    });
  });
  return {hs, cs[save ? T : T & 1], cs, a, m, gates, tc};
}

// mLSTM (Krause) backward through the loop. grad_out (T, B, H) is dL/dh_t from above, grad_hn and
// grad_cn the gradients of the final state. Returns dp (T, B, 5H), the gradient of the
// pre-activations [x_m | z_i z_f z_g z_o] (which is also that of the input projections),
// da = dL/da_t (T, B, H), dh0 and dc0. The caller turns dp and da into weight gradients.
std::vector<Tensor> mlstm_backward(const Tensor& grad_out, const Tensor& grad_hn,
                                   const Tensor& grad_cn, const Tensor& p, const Tensor& hs,
                                   const Tensor& cs, const Tensor& a, const Tensor& gates,
                                   const Tensor& tc, const Tensor& w_mh, const Tensor& w_mg) {
  check({grad_out, p, hs, cs, a, gates, tc, w_mh, w_mg});
  const int64_t T = p.size(0), B = p.size(1), H = hs.size(2);
  Tensor dp = at::empty_like(p), da = at::empty_like(a);
  Tensor dh = copy_of(grad_hn), dc = copy_of(grad_cn);  // running dL/dh_t, dL/dc_t
  Tensor dm = at::empty({B, H}, p.options());
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "mlstm_backward", [&] {
    const Seq<scalar_t> Go(grad_out), P(p), Hs(hs), Cs(cs), A(a), G(gates), Tc(tc), dP(dp), dA(da);
    const scalar_t *wmh = w_mh.data_ptr<scalar_t>(), *wmg = w_mg.data_ptr<scalar_t>();
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t *dh_b = row<scalar_t>(dh, b0), *dc_b = row<scalar_t>(dc, b0), *dm_b = row<scalar_t>(dm, b0);
      for (int64_t t = T - 1; t >= 0; --t) {
        scalar_t* dp_t = dP.at(t, b0);
        lstm_backward_rows(rows, H, G.at(t, b0), Tc.at(t, b0), Cs.at(t, b0), Go.at(t, b0), dh_b,
                           dc_b, dp_t + H, 5 * H);
        gemm<scalar_t>(rows, H, 4 * H, dp_t + H, 5 * H, wmg, H, false, 0, dm_b, H);  // dm = dz W_m
        mul_rows(rows, H, dp_t, 5 * H, dm_b, H, A.at(t, b0), H);                    // dx_m = dm a
        mul_rows(rows, H, dA.at(t, b0), H, dm_b, H, P.at(t, b0), 5 * H);            // da = dm x_m
        gemm<scalar_t>(rows, H, H, dA.at(t, b0), H, wmh, H, false, 0, dh_b, H);     // dh' = da W_mh
      }
    });
  });
  return {dp, da, dh, dc};
}

// mGRU (Krause) forward. p = [x_m | z_r z_z z_n] (T, B, 4H): W_mx x_t and the gates' input parts
// with both biases (b_x + b_m) already added. Returns hs (T+1, B, H), hs[0] = h0, and when `save`
// a = W_mh h, m, rz = [r z], s = r ⊙ m and n; without it those buffers hold one step.
std::vector<Tensor> mgru_forward(const Tensor& p, const Tensor& h0, const Tensor& w_mh,
                                 const Tensor& w_mg, bool save) {
  check({p, w_mh, w_mg});
  const int64_t T = p.size(0), B = p.size(1), H = h0.size(1), S = save ? T : 1;
  const auto options = p.options();
  Tensor hs = at::empty({T + 1, B, H}, options);
  Tensor a = at::empty({S, B, H}, options), m = at::empty({S, B, H}, options);
  Tensor rz = at::empty({S, B, 2 * H}, options), s = at::empty({S, B, H}, options);
  Tensor n = at::empty({S, B, H}, options);
  hs[0].copy_(h0);
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "mgru_forward", [&] {
    const Seq<scalar_t> P(p), Hs(hs), A(a), M(m), Rz(rz), S_(s), N(n);
    const scalar_t* wmh = w_mh.data_ptr<scalar_t>();
    const scalar_t *w_rz = w_mg.data_ptr<scalar_t>(), *w_n = w_rz + 2 * H * H;
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      for (int64_t t = 0; t < T; ++t) {
        const int64_t k = save ? t : 0;
        const scalar_t *p_t = P.at(t, b0), *h_prev = Hs.at(t, b0);
        gemm<scalar_t>(rows, H, H, h_prev, H, wmh, H, true, 0, A.at(k, b0), H);       // a = W_mh h
        mul_rows(rows, H, M.at(k, b0), H, p_t, 4 * H, A.at(k, b0), H);           // m = (W_mx x) ⊙ a
        gemm<scalar_t>(rows, 2 * H, H, M.at(k, b0), H, w_rz, H, true, 0, Rz.at(k, b0), 2 * H);
        mgru_gate_rows(rows, H, Rz.at(k, b0), p_t + H, 4 * H, M.at(k, b0), S_.at(k, b0));  // r, z, s
        gemm<scalar_t>(rows, H, H, S_.at(k, b0), H, w_n, H, true, 0, N.at(k, b0), H);
        mgru_output_rows(rows, H, N.at(k, b0), p_t + 3 * H, 4 * H, Rz.at(k, b0), h_prev,
                         Hs.at(t + 1, b0));                                        // n, h
      }
    });
  });
  return {hs, a, m, rz, s, n};
}

// mGRU (Krause) backward. Returns dp (T, B, 4H), the gradient of [x_m | z_r z_z z_n], da (T, B, H)
// and dh0.
std::vector<Tensor> mgru_backward(const Tensor& grad_out, const Tensor& grad_hn, const Tensor& p,
                                  const Tensor& hs, const Tensor& a, const Tensor& m,
                                  const Tensor& rz, const Tensor& n, const Tensor& w_mh,
                                  const Tensor& w_mg) {
  check({grad_out, p, hs, a, m, rz, n, w_mh, w_mg});
  const int64_t T = p.size(0), B = p.size(1), H = hs.size(2);
  Tensor dp = at::empty_like(p), da = at::empty_like(a);
  Tensor dh_prev = copy_of(grad_hn);
  Tensor ds = at::empty({B, H}, p.options()), dm = at::empty({B, H}, p.options());
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "mgru_backward", [&] {
    const Seq<scalar_t> Go(grad_out), P(p), Hs(hs), A(a), M(m), Rz(rz), N(n), dP(dp), dA(da);
    const scalar_t* wmh = w_mh.data_ptr<scalar_t>();
    const scalar_t *w_rz = w_mg.data_ptr<scalar_t>(), *w_n = w_rz + 2 * H * H;
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t* dhp_b = row<scalar_t>(dh_prev, b0);
      scalar_t *ds_b = row<scalar_t>(ds, b0), *dm_b = row<scalar_t>(dm, b0);
      for (int64_t t = T - 1; t >= 0; --t) {
        scalar_t* dp_t = dP.at(t, b0);
        mgru_output_backward_rows(rows, H, Go.at(t, b0), N.at(t, b0), Rz.at(t, b0), Hs.at(t, b0),
                                  dp_t + 2 * H, 4 * H, dhp_b);
        gemm<scalar_t>(rows, H, H, dp_t + 3 * H, 4 * H, w_n, H, false, 0, ds_b, H);  // ds = dz_n W_n
        mgru_reset_backward_rows(rows, H, ds_b, M.at(t, b0), Rz.at(t, b0), dp_t + H, 4 * H, dm_b);
        gemm<scalar_t>(rows, H, 2 * H, dp_t + H, 4 * H, w_rz, H, false, 1, dm_b, H);  // dm += dz_rz W_rz
        mul_rows(rows, H, dp_t, 4 * H, dm_b, H, A.at(t, b0), H);                     // dx_m = dm a
        mul_rows(rows, H, dA.at(t, b0), H, dm_b, H, P.at(t, b0), 4 * H);             // da = dm x_m
        gemm<scalar_t>(rows, H, H, dA.at(t, b0), H, wmh, H, false, 1, dhp_b, H);     // dh' += da W_mh
      }
    });
  });
  return {dp, da, dh_prev};
}

// mLSTM, input form, forward. x (T, B, E) the inputs, pm = W_m x_t + b_m (T, B, E),
// w_hq = [W_hh; U_m] (4H+E, H), so that one product per step gives both parts that read h_{t-1},
// w_ih (4H, E), bias = b_ih + b_hh (4H). Returns hs (T+1, B, H), c_T, and when `save` cs, m, x̃,
// the activated gates and tanh(c_t) (one step each otherwise).
std::vector<Tensor> mlstm_input_forward(const Tensor& x, const Tensor& pm, const Tensor& h0,
                                        const Tensor& c0, const Tensor& w_hq, const Tensor& w_ih,
                                        const Tensor& bias, bool save) {
  check({x, pm, w_hq, w_ih, bias});
  const int64_t T = x.size(0), B = x.size(1), E = x.size(2), H = h0.size(1), S = save ? T : 1;
  const int64_t Q = 4 * H + E;
  const auto options = x.options();
  Tensor hs = at::empty({T + 1, B, H}, options), cs = at::empty({save ? T + 1 : 2, B, H}, options);
  Tensor m = at::empty({S, B, E}, options), xt = at::empty({S, B, E}, options);
  Tensor gates = at::empty({S, B, 4 * H}, options), tc = at::empty({S, B, H}, options);
  Tensor q = at::empty({B, Q}, options);
  hs[0].copy_(h0);
  cs[0].copy_(c0);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlstm_input_forward", [&] {
    const Seq<scalar_t> X(x), Pm(pm), Hs(hs), Cs(cs), M(m), Xt(xt), G(gates), Tc(tc);
    const scalar_t *whq = w_hq.data_ptr<scalar_t>(), *wih = w_ih.data_ptr<scalar_t>();
    const scalar_t* b = bias.data_ptr<scalar_t>();
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t* q_b = row<scalar_t>(q, b0);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t k = save ? t : 0;
        gemm<scalar_t>(rows, Q, H, Hs.at(t, b0), H, whq, H, true, 0, q_b, Q);  // [W_hh h | U_m h]
        input_factor_rows(rows, E, q_b + 4 * H, Q, Pm.at(t, b0), X.at(t, b0), M.at(k, b0),
                          Xt.at(k, b0));                                       // m, x̃ = m ⊙ x
        gemm<scalar_t>(rows, 4 * H, E, Xt.at(k, b0), E, wih, E, true, 1, q_b, Q);  // += W_ih x̃
        lstm_rows(rows, H, q_b, Q, b, 0, G.at(k, b0), Cs.at(save ? t : t & 1, b0),
                  Cs.at(save ? t + 1 : (t + 1) & 1, b0), Tc.at(k, b0), Hs.at(t + 1, b0));
      }
    });
  });
  return {hs, cs[save ? T : T & 1], cs, m, xt, gates, tc};
}

// mLSTM, input form, backward. Returns dq (T, B, 4H+E) = [dz_i dz_f dz_g dz_o | dm], the gradients
// of the pre-activations and of m (so that dqᵀ h' is the gradient of [W_hh; U_m] in one product),
// dxd = dx̃ ⊙ m (T, B, E), the direct part of dx, then dh0 and dc0.
std::vector<Tensor> mlstm_input_backward(const Tensor& grad_out, const Tensor& grad_hn,
                                         const Tensor& grad_cn, const Tensor& x, const Tensor& hs,
                                         const Tensor& cs, const Tensor& m, const Tensor& gates,
                                         const Tensor& tc, const Tensor& w_hq, const Tensor& w_ih) {
  check({grad_out, x, hs, cs, m, gates, tc, w_hq, w_ih});
  const int64_t T = x.size(0), B = x.size(1), E = x.size(2), H = hs.size(2), Q = 4 * H + E;
  const auto options = x.options();
  Tensor dq = at::empty({T, B, Q}, options), dxd = at::empty({T, B, E}, options);
  Tensor dh = copy_of(grad_hn), dc = copy_of(grad_cn), dxt = at::empty({B, E}, options);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlstm_input_backward", [&] {
    const Seq<scalar_t> Go(grad_out), X(x), Cs(cs), M(m), G(gates), Tc(tc), dQ(dq), dXd(dxd);
    const scalar_t *whq = w_hq.data_ptr<scalar_t>(), *wih = w_ih.data_ptr<scalar_t>();
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t *dh_b = row<scalar_t>(dh, b0), *dc_b = row<scalar_t>(dc, b0), *dxt_b = row<scalar_t>(dxt, b0);
      for (int64_t t = T - 1; t >= 0; --t) {
        scalar_t* dq_t = dQ.at(t, b0);
        lstm_backward_rows(rows, H, G.at(t, b0), Tc.at(t, b0), Cs.at(t, b0), Go.at(t, b0), dh_b,
                           dc_b, dq_t, Q);
        gemm<scalar_t>(rows, E, 4 * H, dq_t, Q, wih, E, false, 0, dxt_b, E);  // dx̃ = dz W_ih
        input_factor_backward_rows(rows, E, dxt_b, X.at(t, b0), M.at(t, b0), dq_t + 4 * H, Q,
                                   dXd.at(t, b0));
        gemm<scalar_t>(rows, H, Q, dq_t, Q, whq, H, false, 0, dh_b, H);  // dh' = dz W_hh + dm U_m
      }
    });
  });
  return {dq, dxd, dh, dc};
}

// mGRU, input form, forward: torch's GRU equations on x̃. Arguments as for the mLSTM's input form
// with w_hq = [W_hh; U_m] (3H+E, H), w_ih (3H, E) and the GRU's two biases, which cannot be merged
// (b_hn sits inside r ⊙ (W_hn h' + b_hn)). Returns hs, and when `save` m, x̃, [r z n] (T, B, 3H)
// and hn = W_hn h' + b_hn (T, B, H).
std::vector<Tensor> mgru_input_forward(const Tensor& x, const Tensor& pm, const Tensor& h0,
                                       const Tensor& w_hq, const Tensor& w_ih, const Tensor& b_ih,
                                       const Tensor& b_hh, bool save) {
  check({x, pm, w_hq, w_ih, b_ih, b_hh});
  const int64_t T = x.size(0), B = x.size(1), E = x.size(2), H = h0.size(1), S = save ? T : 1;
  const int64_t Q = 3 * H + E;
  const auto options = x.options();
  Tensor hs = at::empty({T + 1, B, H}, options);
  Tensor m = at::empty({S, B, E}, options), xt = at::empty({S, B, E}, options);
  Tensor rzn = at::empty({S, B, 3 * H}, options), hn = at::empty({S, B, H}, options);
  Tensor q = at::empty({B, Q}, options), gi = at::empty({B, 3 * H}, options);
  hs[0].copy_(h0);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mgru_input_forward", [&] {
    const Seq<scalar_t> X(x), Pm(pm), Hs(hs), M(m), Xt(xt), G(rzn), Hn(hn);
    const scalar_t *whq = w_hq.data_ptr<scalar_t>(), *wih = w_ih.data_ptr<scalar_t>();
    const scalar_t *bi = b_ih.data_ptr<scalar_t>(), *bh = b_hh.data_ptr<scalar_t>();
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t *q_b = row<scalar_t>(q, b0), *gi_b = row<scalar_t>(gi, b0);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t k = save ? t : 0;
        gemm<scalar_t>(rows, Q, H, Hs.at(t, b0), H, whq, H, true, 0, q_b, Q);  // [W_hh h | U_m h]
        input_factor_rows(rows, E, q_b + 3 * H, Q, Pm.at(t, b0), X.at(t, b0), M.at(k, b0),
                          Xt.at(k, b0));                                       // m, x̃ = m ⊙ x
        gemm<scalar_t>(rows, 3 * H, E, Xt.at(k, b0), E, wih, E, true, 0, gi_b, 3 * H);  // W_ih x̃
        gru_input_rows(rows, H, gi_b, q_b, Q, bi, bh, Hs.at(t, b0), G.at(k, b0), Hn.at(k, b0),
                       Hs.at(t + 1, b0));
      }
    });
  });
  return {hs, m, xt, rzn, hn};
}

// mGRU, input form, backward. Returns dgi (T, B, 3H), the gradient of W_ih x̃ + b_ih;
// dq (T, B, 3H+E) = [dz_r dz_z dz_n r | dm], that of [W_hh h' + b_hh | U_m h']; dxd = dx̃ ⊙ m; dh0.
std::vector<Tensor> mgru_input_backward(const Tensor& grad_out, const Tensor& grad_hn,
                                        const Tensor& x, const Tensor& hs, const Tensor& m,
                                        const Tensor& rzn, const Tensor& hn, const Tensor& w_hq,
                                        const Tensor& w_ih) {
  check({grad_out, x, hs, m, rzn, hn, w_hq, w_ih});
  const int64_t T = x.size(0), B = x.size(1), E = x.size(2), H = hs.size(2), Q = 3 * H + E;
  const auto options = x.options();
  Tensor dgi = at::empty({T, B, 3 * H}, options), dq = at::empty({T, B, Q}, options);
  Tensor dxd = at::empty({T, B, E}, options);
  Tensor dh_prev = copy_of(grad_hn), dxt = at::empty({B, E}, options);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mgru_input_backward", [&] {
    const Seq<scalar_t> Go(grad_out), X(x), Hs(hs), M(m), G(rzn), Hn(hn), dGi(dgi), dQ(dq), dXd(dxd);
    const scalar_t *whq = w_hq.data_ptr<scalar_t>(), *wih = w_ih.data_ptr<scalar_t>();
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t *dhp_b = row<scalar_t>(dh_prev, b0), *dxt_b = row<scalar_t>(dxt, b0);
      for (int64_t t = T - 1; t >= 0; --t) {
        scalar_t *dq_t = dQ.at(t, b0), *dgi_t = dGi.at(t, b0);
        gru_input_backward_rows(rows, H, Go.at(t, b0), G.at(t, b0), Hn.at(t, b0), Hs.at(t, b0),
                                dgi_t, dq_t, Q, dhp_b);
        gemm<scalar_t>(rows, E, 3 * H, dgi_t, 3 * H, wih, E, false, 0, dxt_b, E);  // dx̃ = dgi W_ih
        input_factor_backward_rows(rows, E, dxt_b, X.at(t, b0), M.at(t, b0), dq_t + 3 * H, Q,
                                   dXd.at(t, b0));
        gemm<scalar_t>(rows, H, Q, dq_t, Q, whq, H, false, 1, dhp_b, H);  // dh' += dq [W_hh; U_m]
      }
    });
  });
  return {dgi, dq, dxd, dh_prev};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("mlstm_forward", &mlstm_forward, "mLSTM time loop, forward");
  module.def("mlstm_backward", &mlstm_backward, "mLSTM time loop, backward");
  module.def("mgru_forward", &mgru_forward, "mGRU time loop, forward");
  module.def("mgru_backward", &mgru_backward, "mGRU time loop, backward");
  module.def("mlstm_input_forward", &mlstm_input_forward, "mLSTM (input form) time loop, forward");
  module.def("mlstm_input_backward", &mlstm_input_backward, "mLSTM (input form) time loop, backward");
  module.def("mgru_input_forward", &mgru_input_forward, "mGRU (input form) time loop, forward");
  module.def("mgru_input_backward", &mgru_input_backward, "mGRU (input form) time loop, backward");
  module.def("direct_blas", &direct_blas, "whether products call MKL's BLAS directly");
}
