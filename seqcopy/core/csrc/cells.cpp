// Time loops of the multiplicative cells (mLSTM, mGRU; Krause's form and the input form), forward
// and backward, for CPU tensors of float or double.
//
// seqcopy/core/fast.py computes what reads only x_t, for the whole sequence in one product, before a
// forward loop; everything that depends on the previous step is here, and so is every weight
// gradient, summed inside the backward loop. Tensors are time-major, (T, B, ·), and contiguous.
// seqcopy/core/fast_twin.py holds a Python twin of each function (same arguments, same results; it serves
// where this file cannot be built and for tensors on other devices); keep the two in step.
//
// Why it is written this way (measured: bench/RESULTS.md, "Where the time went"):
// * Products. torch's fused LSTM runs oneDNN's JIT kernels; MKL, which serves torch.mm, falls back
//   to its generic kernels on some CPUs, at about half the speed. So every product goes
//   through oneDNN's small-matrix kernel (torch exports it as at::native::cpublas::brgemm), found
//   to work once at load; failing that, MKL's sgemm, called directly; failing that, at::mm.
// * Threads. Rows of a batch never meet inside a time loop, so the batch is cut into one block of
//   rows per thread and each thread runs the whole sequence for its block: the threads meet once
//   per loop, not at every small per-step product (as when MKL threads each product, and as a
//   step then waits for both cores: slower with 2 threads than with 1 whenever the other core
//   was busy).
// * Element-wise work. The gate maths of a step is one pass over the block (a vectorised exp for
//   float), where ATen ops made ~10 passes forward and ~17 backward, each with its own dispatch.
//
// Notation as in seqcopy/core/cells.py. σ'(z) = σ(1 - σ) and tanh'(z) = 1 - tanh², written in terms of
// the activated values that the forward keeps.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>
#include <torch/csrc/utils/pybind.h>  // pybind11 with the Tensor casters, lighter than torch/extension.h

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
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

enum class Products { brgemm, blas, aten };

bool brgemm_works() {
  static const bool works = [] {
    try {
      const float a[2] = {2, 3}, w[2] = {5, 7};
      float c = 0;
      at::native::cpublas::brgemm(1, 1, 2, 2, 1, 1, false, a, w, &c, false);
      return c == 31;
    } catch (...) {  // not built into this torch, or not for this CPU
      return false;
    }
  }();
  return works;
}

bool blas_linked() {
#if SEQCOPY_DIRECT_BLAS
  return at::hasMKL() && sgemm_ != nullptr && dgemm_ != nullptr;
#else
  return false;
#endif
}

std::atomic<int> forced_products{-1};  // set by use_products, for tests and measurements

// Which library multiplies float blocks: oneDNN's small-matrix kernel (torch's cpublas::brgemm)
// where it runs, else MKL's sgemm, else at::mm. Double (only tests use it) skips brgemm.
Products float_products() {
  const int forced = forced_products.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Products>(forced);
  return brgemm_works() ? Products::brgemm : blas_linked() ? Products::blas : Products::aten;
}

const char* products_name() {
  switch (float_products()) {
    case Products::brgemm: return "oneDNN brgemm";
    case Products::blas: return "MKL sgemm";
    default: return "at::mm";
  }
}

// Force a library ("brgemm", "blas", "aten") or go back to the automatic choice ("auto").
void use_products(const std::string& name) {
  int chosen = -1;
  if (name == "brgemm") {
    TORCH_CHECK(brgemm_works(), "oneDNN brgemm does not run here");
    chosen = static_cast<int>(Products::brgemm);
  } else if (name == "blas") {
    TORCH_CHECK(blas_linked(), "MKL's BLAS is not linked here");
    chosen = static_cast<int>(Products::blas);
  } else if (name == "aten") {
    chosen = static_cast<int>(Products::aten);
  } else {
    TORCH_CHECK(name == "auto", "products: brgemm, blas, aten or auto, not ", name);
  }
  forced_products.store(chosen);
}

// C = A W (+ C when `accumulate`), all row-major: A is (m, k) with row stride lda, W (k, n) with
// ldw, C (m, n) with ldc. Without `accumulate` C is not read (it may hold garbage). Forward
// products take the weights transposed (fast.py passes them so), as brgemm has no transpose flag.
template <typename scalar_t>
void gemm(int64_t m, int64_t n, int64_t k, const scalar_t* a, int64_t lda, const scalar_t* w,
          int64_t ldw, bool accumulate, scalar_t* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const Products products = float_products();
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (products == Products::brgemm) {
      at::native::cpublas::brgemm(m, n, k, lda, ldw, ldc, accumulate, a, w, c, false);
      return;
    }
  }
#if SEQCOPY_DIRECT_BLAS
  if (products != Products::aten && blas_linked()) {
    // BLAS is column-major: it computes Cᵀ = Wᵀ Aᵀ.
    const int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
    const int LDA = static_cast<int>(lda), LDW = static_cast<int>(ldw), LDC = static_cast<int>(ldc);
    const scalar_t one = 1, beta = accumulate ? 1 : 0;
    if constexpr (std::is_same_v<scalar_t, float>) {
      sgemm_("N", "N", &N, &M, &K, &one, w, &LDW, a, &LDA, &beta, c, &LDC);
    } else {
      dgemm_("N", "N", &N, &M, &K, &one, w, &LDW, a, &LDA, &beta, c, &LDC);
    }
    return;
  }
#endif
  const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<scalar_t>::value);
  const Tensor A = at::from_blob(const_cast<scalar_t*>(a), {m, k}, {lda, 1}, options);
  const Tensor W = at::from_blob(const_cast<scalar_t*>(w), {k, n}, {ldw, 1}, options);
  Tensor C = at::from_blob(c, {m, n}, {ldc, 1}, options);
  if (accumulate) {
    C.addmm_(A, W);
  } else {
    at::mm_out(C, A, W);
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

// --- Weight gradients, summed inside the backward loops ---------------------------------------
// A weight's gradient is a sum over steps and rows, Σ_t X_tᵀ Y_t. Each thread adds its own rows'
// terms, one small product per step while X_t and Y_t are still in cache, to a partial sum of its
// own; the partial sums are added once at the end, in thread order, so the same thread count
// gives the same bits every run. (After the loop, as one big product, these ran through MKL at
// half oneDNN's speed on this CPU and read every saved buffer back from memory.)

// out (width, rows) = inᵀ for in (rows, width) with row stride ld.
template <typename T>
SEQCOPY_VECTORISED void transpose_rows(int64_t rows, int64_t width, In<T> in, int64_t ld, Out<T> out) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < width; ++j) out[j * rows + r] = in[r * ld + j];
  }
}

// sum[j] += Σ_r in[r, j]
template <typename T>
SEQCOPY_VECTORISED void add_column_sums(int64_t rows, int64_t width, In<T> in, int64_t ld, Out<T> sum) {
  for (int64_t r = 0; r < rows; ++r) {
    In<T> x = in + r * ld;
    for (int64_t j = 0; j < width; ++j) sum[j] += x[j];
  }
}

// C (n1, n2) += Xᵀ Y for X (rows, n1) with row stride ldx and Y (rows, n2) with ldy; scratch
// holds n1 × rows.
template <typename scalar_t>
void add_outer(int64_t rows, int64_t n1, int64_t n2, const scalar_t* x, int64_t ldx, const scalar_t* y,
               int64_t ldy, scalar_t* scratch, scalar_t* c, int64_t ldc) {
  transpose_rows(rows, n1, x, ldx, scratch);
  gemm<scalar_t>(n1, n2, rows, scratch, rows, y, ldy, true, c, ldc);
}

// One (rows, cols) partial sum per thread, zeroed.
template <typename scalar_t>
struct PartialSums {
  Tensor sums;
  PartialSums(int64_t rows, int64_t cols, const at::TensorOptions& options)
      : sums(at::zeros({at::get_num_threads(), rows, cols}, options)) {}
  scalar_t* mine() const {
    return sums.data_ptr<scalar_t>() + at::get_thread_num() * sums.size(1) * sums.size(2);
  }
  // The sum, transposed: the loops accumulate Xᵀ Y with X the narrower side, the weight's Yᵀ X.
  Tensor transposed_total() const { return sums.sum(0).t().contiguous(); }
  Tensor total() const { return sums.sum(0); }
};

}  // namespace

// mLSTM (Krause) forward. p = [x_m | z_i z_f z_g z_o] (T, B, 5H): the input projections W_mx x_t
// and W_ix x_t + b_i, ... of every step; w_mh_t = W_mhᵀ (H, H) and w_mg_t = W_mgᵀ (H, 4H). Returns hs (T+1, B, H) with hs[0] = h0, c_T, and when
// `save` the tensors the backward needs: cs (T+1, B, H), a = W_mh h_{t-1}, m, the activated gates
// [i f g o] and tanh(c_t). Without `save` those buffers hold one step and are overwritten.
std::vector<Tensor> mlstm_forward(const Tensor& p, const Tensor& h0, const Tensor& c0,
                                  const Tensor& w_mh_t, const Tensor& w_mg_t, bool save) {
  check({p, w_mh_t, w_mg_t});
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
    const scalar_t *wmh = w_mh_t.data_ptr<scalar_t>(), *wmg = w_mg_t.data_ptr<scalar_t>();
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t* z_b = row<scalar_t>(z, b0);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t k = save ? t : 0;
        const scalar_t* p_t = P.at(t, b0);
        gemm<scalar_t>(rows, H, H, Hs.at(t, b0), H, wmh, H, false, A.at(k, b0), H);  // a = W_mh h
        mul_rows(rows, H, M.at(k, b0), H, p_t, 5 * H, A.at(k, b0), H);          // m = (W_mx x) ⊙ a
        gemm<scalar_t>(rows, 4 * H, H, M.at(k, b0), H, wmg, 4 * H, false, z_b, 4 * H);  // W_m m
        lstm_rows(rows, H, z_b, 4 * H, p_t + H, 5 * H, G.at(k, b0),
                  Cs.at(save ? t : t & 1, b0), Cs.at(save ? t + 1 : (t + 1) & 1, b0), Tc.at(k, b0),
                  Hs.at(t + 1, b0));
      }
    });
  });
  return {hs, cs[save ? T : T & 1], cs, a, m, gates, tc};
}

// mLSTM (Krause) backward through the loop. grad_out (T, B, H) is dL/dh_t from above, grad_hn and
// grad_cn the gradients of the final state, x (T, B, E) the inputs and w_x = [W_mx; W_ix] (5H, E).
// Returns dx (T, B, E), dh0, dc0 and the gradients of w_x, W_mh, W_mg and the gates' bias.
std::vector<Tensor> mlstm_backward(const Tensor& grad_out, const Tensor& grad_hn,
                                   const Tensor& grad_cn, const Tensor& x, const Tensor& p,
                                   const Tensor& hs, const Tensor& cs, const Tensor& a,
                                   const Tensor& m, const Tensor& gates, const Tensor& tc,
                                   const Tensor& w_mh, const Tensor& w_mg, const Tensor& w_x) {
  check({grad_out, x, p, hs, cs, a, m, gates, tc, w_mh, w_mg, w_x});
  const int64_t T = p.size(0), B = p.size(1), H = hs.size(2), E = x.size(2);
  const auto options = p.options();
  Tensor dx = at::empty({T, B, E}, options);
  Tensor dh = copy_of(grad_hn), dc = copy_of(grad_cn);  // running dL/dh_t, dL/dc_t
  Tensor dp = at::empty({B, 5 * H}, options), da = at::empty({B, H}, options);
  Tensor dm = at::empty({B, H}, options), scratch = at::empty({B, std::max(H, E)}, options);
  std::vector<Tensor> grads;
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "mlstm_backward", [&] {
    const Seq<scalar_t> Go(grad_out), X(x), P(p), Hs(hs), Cs(cs), A(a), M(m), G(gates), Tc(tc), dX(dx);
    const scalar_t *wmh = w_mh.data_ptr<scalar_t>(), *wmg = w_mg.data_ptr<scalar_t>();
    const scalar_t* wx = w_x.data_ptr<scalar_t>();
    const PartialSums<scalar_t> g_x(E, 5 * H, options), g_mh(H, H, options), g_mg(H, 4 * H, options);
    const PartialSums<scalar_t> g_b(1, 4 * H, options);
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t *dh_b = row<scalar_t>(dh, b0), *dc_b = row<scalar_t>(dc, b0), *dp_b = row<scalar_t>(dp, b0);
      scalar_t *da_b = row<scalar_t>(da, b0), *dm_b = row<scalar_t>(dm, b0), *tr = row<scalar_t>(scratch, b0);
      scalar_t *acc_x = g_x.mine(), *acc_mh = g_mh.mine(), *acc_mg = g_mg.mine(), *acc_b = g_b.mine();
      for (int64_t t = T - 1; t >= 0; --t) {
        lstm_backward_rows(rows, H, G.at(t, b0), Tc.at(t, b0), Cs.at(t, b0), Go.at(t, b0), dh_b,
                           dc_b, dp_b + H, 5 * H);                        // dp = [dx_m | dz]
        gemm<scalar_t>(rows, H, 4 * H, dp_b + H, 5 * H, wmg, H, false, dm_b, H);  // dm = dz W_m
        mul_rows(rows, H, dp_b, 5 * H, dm_b, H, A.at(t, b0), H);                 // dx_m = dm a
        mul_rows(rows, H, da_b, H, dm_b, H, P.at(t, b0), 5 * H);                 // da = dm x_m
        gemm<scalar_t>(rows, H, H, da_b, H, wmh, H, false, dh_b, H);             // dh' = da W_mh
        add_outer(rows, H, 4 * H, M.at(t, b0), H, dp_b + H, 5 * H, tr, acc_mg, 4 * H);  // mᵀ dz
        add_outer(rows, H, H, Hs.at(t, b0), H, da_b, H, tr, acc_mh, H);                // h'ᵀ da
        add_outer(rows, E, 5 * H, X.at(t, b0), E, dp_b, 5 * H, tr, acc_x, 5 * H);      // xᵀ dp
        add_column_sums(rows, 4 * H, dp_b + H, 5 * H, acc_b);
        gemm<scalar_t>(rows, E, 5 * H, dp_b, 5 * H, wx, E, false, dX.at(t, b0), E);  // dx = dp W_x
      }
    });
    grads = {g_x.transposed_total(), g_mh.transposed_total(), g_mg.transposed_total(), g_b.total()[0]};
  });
  return {dx, dh, dc, grads[0], grads[1], grads[2], grads[3]};
}

// mGRU (Krause) forward. p = [x_m | z_r z_z z_n] (T, B, 4H): W_mx x_t and the gates' input parts
// with both biases (b_x + b_m) already added; w_mh_t = W_mhᵀ (H, H), w_mg_t = W_mgᵀ (H, 3H). Returns hs (T+1, B, H), hs[0] = h0, and when `save`
// a = W_mh h, m, rz = [r z], s = r ⊙ m and n; without it those buffers hold one step.
std::vector<Tensor> mgru_forward(const Tensor& p, const Tensor& h0, const Tensor& w_mh_t,
                                 const Tensor& w_mg_t, bool save) {
  check({p, w_mh_t, w_mg_t});
  const int64_t T = p.size(0), B = p.size(1), H = h0.size(1), S = save ? T : 1;
  const auto options = p.options();
  Tensor hs = at::empty({T + 1, B, H}, options);
  Tensor a = at::empty({S, B, H}, options), m = at::empty({S, B, H}, options);
  Tensor rz = at::empty({S, B, 2 * H}, options), s = at::empty({S, B, H}, options);
  Tensor n = at::empty({S, B, H}, options);
  hs[0].copy_(h0);
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "mgru_forward", [&] {
    const Seq<scalar_t> P(p), Hs(hs), A(a), M(m), Rz(rz), S_(s), N(n);
    const scalar_t* wmh = w_mh_t.data_ptr<scalar_t>();
    const scalar_t *w_rz = w_mg_t.data_ptr<scalar_t>(), *w_n = w_rz + 2 * H;  // columns of W_mgᵀ
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      for (int64_t t = 0; t < T; ++t) {
        const int64_t k = save ? t : 0;
        const scalar_t *p_t = P.at(t, b0), *h_prev = Hs.at(t, b0);
        gemm<scalar_t>(rows, H, H, h_prev, H, wmh, H, false, A.at(k, b0), H);      // a = W_mh h
        mul_rows(rows, H, M.at(k, b0), H, p_t, 4 * H, A.at(k, b0), H);           // m = (W_mx x) ⊙ a
        gemm<scalar_t>(rows, 2 * H, H, M.at(k, b0), H, w_rz, 3 * H, false, Rz.at(k, b0), 2 * H);
        mgru_gate_rows(rows, H, Rz.at(k, b0), p_t + H, 4 * H, M.at(k, b0), S_.at(k, b0));  // r, z, s
        gemm<scalar_t>(rows, H, H, S_.at(k, b0), H, w_n, 3 * H, false, N.at(k, b0), H);
        mgru_output_rows(rows, H, N.at(k, b0), p_t + 3 * H, 4 * H, Rz.at(k, b0), h_prev,
                         Hs.at(t + 1, b0));                                        // n, h
      }
    });
  });
  return {hs, a, m, rz, s, n};
}

// mGRU (Krause) backward. Arguments as for the mLSTM's, with w_x = [W_mx; W_ix] (4H, E); returns
// dx (T, B, E), dh0 and the gradients of w_x, W_mh, W_mg and of the gates' bias (both of them).
std::vector<Tensor> mgru_backward(const Tensor& grad_out, const Tensor& grad_hn, const Tensor& x,
                                  const Tensor& p, const Tensor& hs, const Tensor& a,
                                  const Tensor& m, const Tensor& rz, const Tensor& s,
                                  const Tensor& n, const Tensor& w_mh, const Tensor& w_mg,
                                  const Tensor& w_x) {
  check({grad_out, x, p, hs, a, m, rz, s, n, w_mh, w_mg, w_x});
  const int64_t T = p.size(0), B = p.size(1), H = hs.size(2), E = x.size(2);
  const auto options = p.options();
  Tensor dx = at::empty({T, B, E}, options), dh_prev = copy_of(grad_hn);
  Tensor dp = at::empty({B, 4 * H}, options), da = at::empty({B, H}, options);
  Tensor ds = at::empty({B, H}, options), dm = at::empty({B, H}, options);
  Tensor scratch = at::empty({B, std::max(H, E)}, options);
  std::vector<Tensor> grads;
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "mgru_backward", [&] {
    const Seq<scalar_t> Go(grad_out), X(x), P(p), Hs(hs), A(a), M(m), Rz(rz), S_(s), N(n), dX(dx);
    const scalar_t *wmh = w_mh.data_ptr<scalar_t>(), *wx = w_x.data_ptr<scalar_t>();
    const scalar_t *w_rz = w_mg.data_ptr<scalar_t>(), *w_n = w_rz + 2 * H * H;
    const PartialSums<scalar_t> g_x(E, 4 * H, options), g_mh(H, H, options), g_mg(H, 3 * H, options);
    const PartialSums<scalar_t> g_b(1, 3 * H, options);
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t *dhp_b = row<scalar_t>(dh_prev, b0), *dp_b = row<scalar_t>(dp, b0);
      scalar_t *da_b = row<scalar_t>(da, b0), *ds_b = row<scalar_t>(ds, b0), *dm_b = row<scalar_t>(dm, b0);
      scalar_t *tr = row<scalar_t>(scratch, b0), *acc_x = g_x.mine(), *acc_mh = g_mh.mine();
      scalar_t *acc_mg = g_mg.mine(), *acc_b = g_b.mine();
      for (int64_t t = T - 1; t >= 0; --t) {
        mgru_output_backward_rows(rows, H, Go.at(t, b0), N.at(t, b0), Rz.at(t, b0), Hs.at(t, b0),
                                  dp_b + 2 * H, 4 * H, dhp_b);  // dp = [dx_m | dz_r dz_z dz_n]
        gemm<scalar_t>(rows, H, H, dp_b + 3 * H, 4 * H, w_n, H, false, ds_b, H);  // ds = dz_n W_n
        mgru_reset_backward_rows(rows, H, ds_b, M.at(t, b0), Rz.at(t, b0), dp_b + H, 4 * H, dm_b);
        gemm<scalar_t>(rows, H, 2 * H, dp_b + H, 4 * H, w_rz, H, true, dm_b, H);  // dm += dz_rz W_rz
        mul_rows(rows, H, dp_b, 4 * H, dm_b, H, A.at(t, b0), H);                  // dx_m = dm a
        mul_rows(rows, H, da_b, H, dm_b, H, P.at(t, b0), 4 * H);                  // da = dm x_m
        gemm<scalar_t>(rows, H, H, da_b, H, wmh, H, true, dhp_b, H);              // dh' += da W_mh
        // r, z read m; n reads s = r ⊙ m: the two parts of W_mg see different inputs.
        add_outer(rows, H, 2 * H, M.at(t, b0), H, dp_b + H, 4 * H, tr, acc_mg, 3 * H);
        add_outer(rows, H, H, S_.at(t, b0), H, dp_b + 3 * H, 4 * H, tr, acc_mg + 2 * H, 3 * H);
        add_outer(rows, H, H, Hs.at(t, b0), H, da_b, H, tr, acc_mh, H);
        add_outer(rows, E, 4 * H, X.at(t, b0), E, dp_b, 4 * H, tr, acc_x, 4 * H);
        add_column_sums(rows, 3 * H, dp_b + H, 4 * H, acc_b);
        gemm<scalar_t>(rows, E, 4 * H, dp_b, 4 * H, wx, E, false, dX.at(t, b0), E);  // dx = dp W_x
      }
    });
    grads = {g_x.transposed_total(), g_mh.transposed_total(), g_mg.transposed_total(), g_b.total()[0]};
  });
  return {dx, dh_prev, grads[0], grads[1], grads[2], grads[3]};
}

// mLSTM, input form, forward. x (T, B, E) the inputs, pm = W_m x_t + b_m (T, B, E),
// w_hq_t = [W_hh; U_m]ᵀ (H, 4H+E), so that one product per step gives both parts that read
// h_{t-1}, w_ih_t = W_ihᵀ (E, 4H), bias = b_ih + b_hh (4H). Returns hs (T+1, B, H), c_T, and when `save` cs, m, x̃,
// the activated gates and tanh(c_t) (one step each otherwise).
std::vector<Tensor> mlstm_input_forward(const Tensor& x, const Tensor& pm, const Tensor& h0,
                                        const Tensor& c0, const Tensor& w_hq_t, const Tensor& w_ih_t,
                                        const Tensor& bias, bool save) {
  check({x, pm, w_hq_t, w_ih_t, bias});
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
    const scalar_t *whq = w_hq_t.data_ptr<scalar_t>(), *wih = w_ih_t.data_ptr<scalar_t>();
    const scalar_t* b = bias.data_ptr<scalar_t>();
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t* q_b = row<scalar_t>(q, b0);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t k = save ? t : 0;
        gemm<scalar_t>(rows, Q, H, Hs.at(t, b0), H, whq, Q, false, q_b, Q);  // [W_hh h | U_m h]
        input_factor_rows(rows, E, q_b + 4 * H, Q, Pm.at(t, b0), X.at(t, b0), M.at(k, b0),
                          Xt.at(k, b0));                                     // m, x̃ = m ⊙ x
        gemm<scalar_t>(rows, 4 * H, E, Xt.at(k, b0), E, wih, 4 * H, true, q_b, Q);  // += W_ih x̃
        lstm_rows(rows, H, q_b, Q, b, 0, G.at(k, b0), Cs.at(save ? t : t & 1, b0),
                  Cs.at(save ? t + 1 : (t + 1) & 1, b0), Tc.at(k, b0), Hs.at(t + 1, b0));
      }
    });
  });
  return {hs, cs[save ? T : T & 1], cs, m, xt, gates, tc};
}

// mLSTM, input form, backward. Returns dx (T, B, E), dh0, dc0 and the gradients of W_ih, W_hh,
// the gates' bias (b_ih and b_hh alike), W_m, U_m and b_m. dq = [dz_i dz_f dz_g dz_o | dm] holds
// the gradients of everything that reads h_{t-1}, so dqᵀ h' is that of [W_hh; U_m] in one product.
std::vector<Tensor> mlstm_input_backward(const Tensor& grad_out, const Tensor& grad_hn,
                                         const Tensor& grad_cn, const Tensor& x, const Tensor& hs,
                                         const Tensor& cs, const Tensor& m, const Tensor& xt,
                                         const Tensor& gates, const Tensor& tc, const Tensor& w_hq,
                                         const Tensor& w_ih, const Tensor& w_im) {
  check({grad_out, x, hs, cs, m, xt, gates, tc, w_hq, w_ih, w_im});
  const int64_t T = x.size(0), B = x.size(1), E = x.size(2), H = hs.size(2), Q = 4 * H + E;
  const auto options = x.options();
  Tensor dx = at::empty({T, B, E}, options), dh = copy_of(grad_hn), dc = copy_of(grad_cn);
  Tensor dq = at::empty({B, Q}, options), dxt = at::empty({B, E}, options);
  Tensor scratch = at::empty({B, std::max(H, E)}, options);
  std::vector<Tensor> grads;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlstm_input_backward", [&] {
    const Seq<scalar_t> Go(grad_out), X(x), Hs(hs), Cs(cs), M(m), Xt(xt), G(gates), Tc(tc), dX(dx);
    const scalar_t *whq = w_hq.data_ptr<scalar_t>(), *wih = w_ih.data_ptr<scalar_t>();
    const scalar_t* wim = w_im.data_ptr<scalar_t>();
    const PartialSums<scalar_t> g_hq(H, Q, options), g_ih(E, 4 * H, options), g_im(E, E, options);
    const PartialSums<scalar_t> g_b(1, Q, options);
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t *dh_b = row<scalar_t>(dh, b0), *dc_b = row<scalar_t>(dc, b0), *dq_b = row<scalar_t>(dq, b0);
      scalar_t *dxt_b = row<scalar_t>(dxt, b0), *tr = row<scalar_t>(scratch, b0);
      scalar_t *acc_hq = g_hq.mine(), *acc_ih = g_ih.mine(), *acc_im = g_im.mine(), *acc_b = g_b.mine();
      for (int64_t t = T - 1; t >= 0; --t) {
        lstm_backward_rows(rows, H, G.at(t, b0), Tc.at(t, b0), Cs.at(t, b0), Go.at(t, b0), dh_b,
                           dc_b, dq_b, Q);
        gemm<scalar_t>(rows, E, 4 * H, dq_b, Q, wih, E, false, dxt_b, E);  // dx̃ = dz W_ih
        input_factor_backward_rows(rows, E, dxt_b, X.at(t, b0), M.at(t, b0), dq_b + 4 * H, Q,
                                   dX.at(t, b0));                         // dm; dx = dx̃ ⊙ m + …
        gemm<scalar_t>(rows, H, Q, dq_b, Q, whq, H, false, dh_b, H);  // dh' = dz W_hh + dm U_m
        add_outer(rows, H, Q, Hs.at(t, b0), H, dq_b, Q, tr, acc_hq, Q);              // h'ᵀ dq
        add_outer(rows, E, 4 * H, Xt.at(t, b0), E, dq_b, Q, tr, acc_ih, 4 * H);      // x̃ᵀ dz
        add_outer(rows, E, E, X.at(t, b0), E, dq_b + 4 * H, Q, tr, acc_im, E);       // xᵀ dm
        add_column_sums(rows, Q, dq_b, Q, acc_b);
        gemm<scalar_t>(rows, E, E, dq_b + 4 * H, Q, wim, E, true, dX.at(t, b0), E);  // … + dm W_m
      }
    });
    const Tensor hq = g_hq.transposed_total(), b = g_b.total()[0];
    grads = {g_ih.transposed_total(), hq.narrow(0, 0, 4 * H), b.narrow(0, 0, 4 * H),
             g_im.transposed_total(), hq.narrow(0, 4 * H, E), b.narrow(0, 4 * H, E)};
  });
  return {dx, dh, dc, grads[0], grads[1], grads[2], grads[3], grads[4], grads[5]};
}

// mGRU, input form, forward: torch's GRU equations on x̃. Arguments as for the mLSTM's input form
// with w_hq_t = [W_hh; U_m]ᵀ (H, 3H+E), w_ih_t = W_ihᵀ (E, 3H) and the GRU's two biases, which cannot be merged
// (b_hn sits inside r ⊙ (W_hn h' + b_hn)). Returns hs, and when `save` m, x̃, [r z n] (T, B, 3H)
// and hn = W_hn h' + b_hn (T, B, H).
std::vector<Tensor> mgru_input_forward(const Tensor& x, const Tensor& pm, const Tensor& h0,
                                       const Tensor& w_hq_t, const Tensor& w_ih_t,
                                       const Tensor& b_ih, const Tensor& b_hh, bool save) {
  check({x, pm, w_hq_t, w_ih_t, b_ih, b_hh});
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
    const scalar_t *whq = w_hq_t.data_ptr<scalar_t>(), *wih = w_ih_t.data_ptr<scalar_t>();
    const scalar_t *bi = b_ih.data_ptr<scalar_t>(), *bh = b_hh.data_ptr<scalar_t>();
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t *q_b = row<scalar_t>(q, b0), *gi_b = row<scalar_t>(gi, b0);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t k = save ? t : 0;
        gemm<scalar_t>(rows, Q, H, Hs.at(t, b0), H, whq, Q, false, q_b, Q);  // [W_hh h | U_m h]
        input_factor_rows(rows, E, q_b + 3 * H, Q, Pm.at(t, b0), X.at(t, b0), M.at(k, b0),
                          Xt.at(k, b0));                                     // m, x̃ = m ⊙ x
        gemm<scalar_t>(rows, 3 * H, E, Xt.at(k, b0), E, wih, 3 * H, false, gi_b, 3 * H);  // W_ih x̃
        gru_input_rows(rows, H, gi_b, q_b, Q, bi, bh, Hs.at(t, b0), G.at(k, b0), Hn.at(k, b0),
                       Hs.at(t + 1, b0));
      }
    });
  });
  return {hs, m, xt, rzn, hn};
}

// mGRU, input form, backward. Returns dx (T, B, E), dh0 and the gradients of W_ih, W_hh, b_ih,
// b_hh, W_m, U_m and b_m. dgi = [dz_r dz_z dz_n] is the gradient of W_ih x̃ + b_ih;
// dq = [dz_r dz_z dz_n ⊙ r | dm] that of [W_hh h' + b_hh | m].
std::vector<Tensor> mgru_input_backward(const Tensor& grad_out, const Tensor& grad_hn,
                                        const Tensor& x, const Tensor& hs, const Tensor& m,
                                        const Tensor& xt, const Tensor& rzn, const Tensor& hn,
                                        const Tensor& w_hq, const Tensor& w_ih, const Tensor& w_im) {
  check({grad_out, x, hs, m, xt, rzn, hn, w_hq, w_ih, w_im});
  const int64_t T = x.size(0), B = x.size(1), E = x.size(2), H = hs.size(2), Q = 3 * H + E;
  const auto options = x.options();
  Tensor dx = at::empty({T, B, E}, options), dh_prev = copy_of(grad_hn);
  Tensor dgi = at::empty({B, 3 * H}, options), dq = at::empty({B, Q}, options);
  Tensor dxt = at::empty({B, E}, options), scratch = at::empty({B, std::max(H, E)}, options);
  std::vector<Tensor> grads;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mgru_input_backward", [&] {
    const Seq<scalar_t> Go(grad_out), X(x), Hs(hs), M(m), Xt(xt), G(rzn), Hn(hn), dX(dx);
    const scalar_t *whq = w_hq.data_ptr<scalar_t>(), *wih = w_ih.data_ptr<scalar_t>();
    const scalar_t* wim = w_im.data_ptr<scalar_t>();
    const PartialSums<scalar_t> g_hq(H, Q, options), g_ih(E, 3 * H, options), g_im(E, E, options);
    const PartialSums<scalar_t> g_bi(1, 3 * H, options), g_bq(1, Q, options);
    for_each_block(B, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      scalar_t *dhp_b = row<scalar_t>(dh_prev, b0), *dgi_b = row<scalar_t>(dgi, b0);
      scalar_t *dq_b = row<scalar_t>(dq, b0), *dxt_b = row<scalar_t>(dxt, b0), *tr = row<scalar_t>(scratch, b0);
      scalar_t *acc_hq = g_hq.mine(), *acc_ih = g_ih.mine(), *acc_im = g_im.mine();
      scalar_t *acc_bi = g_bi.mine(), *acc_bq = g_bq.mine();
      for (int64_t t = T - 1; t >= 0; --t) {
        gru_input_backward_rows(rows, H, Go.at(t, b0), G.at(t, b0), Hn.at(t, b0), Hs.at(t, b0),
                                dgi_b, dq_b, Q, dhp_b);
        gemm<scalar_t>(rows, E, 3 * H, dgi_b, 3 * H, wih, E, false, dxt_b, E);  // dx̃ = dgi W_ih
        input_factor_backward_rows(rows, E, dxt_b, X.at(t, b0), M.at(t, b0), dq_b + 3 * H, Q,
                                   dX.at(t, b0));                           // dm; dx = dx̃ ⊙ m + …
        gemm<scalar_t>(rows, H, Q, dq_b, Q, whq, H, true, dhp_b, H);  // dh' += dq [W_hh; U_m]
        add_outer(rows, H, Q, Hs.at(t, b0), H, dq_b, Q, tr, acc_hq, Q);            // h'ᵀ dq
        add_outer(rows, E, 3 * H, Xt.at(t, b0), E, dgi_b, 3 * H, tr, acc_ih, 3 * H);  // x̃ᵀ dgi
        add_outer(rows, E, E, X.at(t, b0), E, dq_b + 3 * H, Q, tr, acc_im, E);     // xᵀ dm
        add_column_sums(rows, 3 * H, dgi_b, 3 * H, acc_bi);
        add_column_sums(rows, Q, dq_b, Q, acc_bq);
        gemm<scalar_t>(rows, E, E, dq_b + 3 * H, Q, wim, E, true, dX.at(t, b0), E);  // … + dm W_m
      }
    });
    const Tensor hq = g_hq.transposed_total(), bq = g_bq.total()[0];
    grads = {g_ih.transposed_total(), hq.narrow(0, 0, 3 * H), g_bi.total()[0], bq.narrow(0, 0, 3 * H),
             g_im.transposed_total(), hq.narrow(0, 3 * H, E), bq.narrow(0, 3 * H, E)};
  });
  return {dx, dh_prev, grads[0], grads[1], grads[2], grads[3], grads[4], grads[5], grads[6]};
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
  module.def("products", &products_name, "which library multiplies float blocks in the loops");
  module.def("use_products", &use_products, "force brgemm, blas or aten for the products; auto");
}
