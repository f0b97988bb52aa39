// Time loops of the multiplicative cells (mLSTM, mGRU), forward and backward, in ATen ops.
//
// seqcopy/fast.py does everything that is one big product over the whole sequence (the input
// projections before the loop, the weight gradients after it); here are only the steps that must
// run one after the other. Tensors are time-major, (T, B, ·), and contiguous; per-step results go
// straight into preallocated (T, B, ·) buffers through the ATen *_out ops, so a step allocates
// nothing. ATen ops keep it device-generic (CPU, CUDA, MPS). seqcopy/fast.py holds a line-for-line
// Python twin of each function (the fallback); keep the two in step.
//
// Notation as in seqcopy/cells.py; σ'(z) = σ(1-σ) and tanh'(z) = 1 - tanh², both written in terms
// of the activated value (at::sigmoid_backward / at::tanh_backward take the output, not z).

#include <ATen/ATen.h>
#include <torch/csrc/utils/pybind.h>  // pybind11 with the Tensor casters, lighter than torch/extension.h

#include <vector>

using at::Tensor;

// mLSTM forward. p = [x_m | z_i z_f z_g z_o] (T, B, 5H): the input projections W_mx x_t and
// W_ix x_t + b_i, ... of every step. Returns hs (T+1, B, H) with hs[0] = h0, c_T, and when `save`
// the tensors the backward needs: cs (T+1, B, H), a = W_mh h_{t-1}, m, the activated gates
// [i f g o] and tanh(c_t). Without `save` those buffers hold one step and are overwritten.
std::vector<Tensor> mlstm_forward(const Tensor& p, const Tensor& h0, const Tensor& c0,
                                  const Tensor& w_mh, const Tensor& w_mg, bool save) {
  const int64_t T = p.size(0), B = p.size(1), H = h0.size(1);
  const int64_t S = save ? T : 1;  // steps kept
  Tensor hs = at::empty({T + 1, B, H}, p.options());
  Tensor cs = at::empty({save ? T + 1 : 2, B, H}, p.options());
  Tensor a = at::empty({S, B, H}, p.options()), m = at::empty({S, B, H}, p.options());
  Tensor gates = at::empty({S, B, 4 * H}, p.options()), tc = at::empty({S, B, H}, p.options());
  hs[0].copy_(h0);
  cs[0].copy_(c0);
  const Tensor w_mh_t = w_mh.t(), w_mg_t = w_mg.t();
  for (int64_t t = 0; t < T; ++t) {
    const int64_t k = save ? t : 0;
    const Tensor p_t = p[t], h_prev = hs[t], c_prev = cs[save ? t : t & 1];
    Tensor a_t = a[k], m_t = m[k], g_t = gates[k], tc_t = tc[k], h = hs[t + 1];
    Tensor c = cs[save ? t + 1 : (t + 1) & 1];
    at::mm_out(a_t, h_prev, w_mh_t);                                      // a = W_mh h
    at::mul_out(m_t, p_t.narrow(1, 0, H), a_t);                           // m = (W_mx x) ⊙ a
    at::addmm_out(g_t, p_t.narrow(1, H, 4 * H), m_t, w_mg_t);             // z = W_x x + b + W_m m
    g_t.narrow(1, 0, 2 * H).sigmoid_();                                   // i, f
    g_t.narrow(1, 2 * H, H).tanh_();                                      // g
    g_t.narrow(1, 3 * H, H).sigmoid_();                                   // o
    const Tensor i = g_t.narrow(1, 0, H), f = g_t.narrow(1, H, H);
    const Tensor g = g_t.narrow(1, 2 * H, H), o = g_t.narrow(1, 3 * H, H);
    at::mul_out(c, f, c_prev).addcmul_(i, g);                             // c = f c' + i g
    at::tanh_out(tc_t, c);
    at::mul_out(h, o, tc_t);                                              // h = o tanh(c)
  }
  return {hs, cs[save ? T : T & 1], cs, a, m, gates, tc};
}

// mLSTM backward through the loop. grad_out (T, B, H) is dL/dh_t from above, grad_hn and grad_cn
// the gradients of the final state. Returns dp (T, B, 5H), the gradient of the pre-activations
// [x_m | z_i z_f z_g z_o] (which is also that of the input projections), da = dL/da_t (T, B, H),
// dh0 and dc0. The caller turns dp and da into weight gradients with one product each.
std::vector<Tensor> mlstm_backward(const Tensor& grad_out, const Tensor& grad_hn,
                                   const Tensor& grad_cn, const Tensor& p, const Tensor& hs,
                                   const Tensor& cs, const Tensor& a, const Tensor& gates,
                                   const Tensor& tc, const Tensor& w_mh, const Tensor& w_mg) {
  const int64_t T = p.size(0), B = p.size(1), H = hs.size(2);
  Tensor dp = at::empty_like(p), da = at::empty_like(a);
  Tensor dh = grad_hn.clone(), dc = grad_cn.clone();  // running dL/dh_t, dL/dc_t
  Tensor tmp = at::empty({B, H}, p.options()), dm = at::empty({B, H}, p.options());
  for (int64_t t = T - 1; t >= 0; --t) {
    const Tensor g_t = gates[t], tc_t = tc[t];
    Tensor dp_t = dp[t], da_t = da[t], dz = dp_t.narrow(1, H, 4 * H);
    Tensor dz_i = dz.narrow(1, 0, H), dz_f = dz.narrow(1, H, H);
    Tensor dz_g = dz.narrow(1, 2 * H, H), dz_o = dz.narrow(1, 3 * H, H), dx_m = dp_t.narrow(1, 0, H);
    const Tensor i = g_t.narrow(1, 0, H), f = g_t.narrow(1, H, H);
    const Tensor g = g_t.narrow(1, 2 * H, H), o = g_t.narrow(1, 3 * H, H);
    dh.add_(grad_out[t]);
    // h = o tanh(c): dc += dh o (1 - tanh²c), dz_o = dh tanh(c) σ'(o)
    at::tanh_backward_out(tmp, at::mul_out(tmp, dh, o), tc_t);
    dc.add_(tmp);
    at::sigmoid_backward_out(dz_o, at::mul_out(tmp, dh, tc_t), o);
    // c = f c' + i g: dz_i = dc g σ'(i), dz_f = dc c' σ'(f), dz_g = dc i (1 - g²)
    at::sigmoid_backward_out(dz_i, at::mul_out(tmp, dc, g), i);
    at::sigmoid_backward_out(dz_f, at::mul_out(tmp, dc, cs[t]), f);
    at::tanh_backward_out(dz_g, at::mul_out(tmp, dc, i), g);
    dc.mul_(f);                                                           // dc' = dc f
    // z = ... + W_m m: dm = dz W_m;  m = x_m ⊙ a: dx_m = dm a, da = dm x_m
    at::mm_out(dm, dz, w_mg);
    at::mul_out(dx_m, dm, a[t]);
    at::mul_out(da_t, dm, p[t].narrow(1, 0, H));
    at::mm_out(dh, da_t, w_mh);                                          // dh' = da W_mh
  }
  return {dp, da, dh, dc};
}

// mGRU forward. p = [x_m | z_r z_z z_n] (T, B, 4H): W_mx x_t and the gates' input parts with both
// biases (b_x + b_m) already added. Returns hs (T+1, B, H), hs[0] = h0, and when `save` a = W_mh h,
// m, rz = [r z], s = r ⊙ m and n; without it those buffers hold one step.
std::vector<Tensor> mgru_forward(const Tensor& p, const Tensor& h0, const Tensor& w_mh,
                                 const Tensor& w_mg, bool save) {
  const int64_t T = p.size(0), B = p.size(1), H = h0.size(1);
  const int64_t S = save ? T : 1;
  Tensor hs = at::empty({T + 1, B, H}, p.options());
  Tensor a = at::empty({S, B, H}, p.options()), m = at::empty({S, B, H}, p.options());
  Tensor rz = at::empty({S, B, 2 * H}, p.options()), s = at::empty({S, B, H}, p.options());
  Tensor n = at::empty({S, B, H}, p.options());
  hs[0].copy_(h0);
  const Tensor w_mh_t = w_mh.t(), w_rz_t = w_mg.narrow(0, 0, 2 * H).t();
  const Tensor w_n_t = w_mg.narrow(0, 2 * H, H).t();
  for (int64_t t = 0; t < T; ++t) {
    const int64_t k = save ? t : 0;
    const Tensor p_t = p[t], h_prev = hs[t];
    Tensor a_t = a[k], m_t = m[k], rz_t = rz[k], s_t = s[k], n_t = n[k], h = hs[t + 1];
    at::mm_out(a_t, h_prev, w_mh_t);                                      // a = W_mh h
    at::mul_out(m_t, p_t.narrow(1, 0, H), a_t);                           // m = (W_mx x) ⊙ a
    at::addmm_out(rz_t, p_t.narrow(1, H, 2 * H), m_t, w_rz_t).sigmoid_(); // r, z
    at::mul_out(s_t, rz_t.narrow(1, 0, H), m_t);                          // s = r ⊙ m
    at::addmm_out(n_t, p_t.narrow(1, 3 * H, H), s_t, w_n_t).tanh_();      // n
    at::lerp_out(h, n_t, h_prev, rz_t.narrow(1, H, H));                   // h = n + z (h' - n)
  }
  return {hs, a, m, rz, s, n};
}

// mGRU backward. Returns dp (T, B, 4H), the gradient of [x_m | z_r z_z z_n], da (T, B, H), dh0.
std::vector<Tensor> mgru_backward(const Tensor& grad_out, const Tensor& grad_hn, const Tensor& p,
                                  const Tensor& hs, const Tensor& a, const Tensor& m,
                                  const Tensor& rz, const Tensor& n, const Tensor& w_mh,
                                  const Tensor& w_mg) {
  const int64_t T = p.size(0), B = p.size(1), H = hs.size(2);
  Tensor dp = at::empty_like(p), da = at::empty_like(a);
  Tensor dh = at::empty({B, H}, p.options()), dh_prev = grad_hn.clone();
  Tensor tmp = at::empty({B, H}, p.options()), ds = at::empty({B, H}, p.options());
  Tensor dm = at::empty({B, H}, p.options());
  const Tensor w_rz = w_mg.narrow(0, 0, 2 * H), w_n = w_mg.narrow(0, 2 * H, H);
  for (int64_t t = T - 1; t >= 0; --t) {
    const Tensor r = rz[t].narrow(1, 0, H), z = rz[t].narrow(1, H, H), n_t = n[t];
    Tensor dp_t = dp[t], da_t = da[t], dx_m = dp_t.narrow(1, 0, H);
    Tensor dz_rz = dp_t.narrow(1, H, 2 * H), dz_r = dp_t.narrow(1, H, H);
    Tensor dz_z = dp_t.narrow(1, 2 * H, H), dz_n = dp_t.narrow(1, 3 * H, H);
    at::add_out(dh, dh_prev, grad_out[t]);
    // h = (1 - z) n + z h': dz_n = dh (1 - z)(1 - n²), dz_z = dh (h' - n) σ'(z), dh' = dh z + ...
    at::tanh_backward_out(dz_n, at::addcmul_out(tmp, dh, dh, z, -1), n_t);
    at::sigmoid_backward_out(dz_z, at::sub_out(tmp, hs[t], n_t).mul_(dh), z);
    // z_n = ... + W_n s with s = r ⊙ m: ds = dz_n W_n, dz_r = ds m σ'(r), dm = ds r
    at::mm_out(ds, dz_n, w_n);
    at::sigmoid_backward_out(dz_r, at::mul_out(tmp, ds, m[t]), r);
    at::mul_out(dm, ds, r).addmm_(dz_rz, w_rz);                           // dm += [dz_r dz_z] W_rz
    // m = x_m ⊙ a, a = W_mh h': dx_m = dm a, da = dm x_m, dh' = dh z + da W_mh
    at::mul_out(dx_m, dm, a[t]);
    at::mul_out(da_t, dm, p[t].narrow(1, 0, H));
    at::mul_out(dh_prev, dh, z).addmm_(da_t, w_mh);
  }
  return {dp, da, dh_prev};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("mlstm_forward", &mlstm_forward, "mLSTM time loop, forward");
  module.def("mlstm_backward", &mlstm_backward, "mLSTM time loop, backward");
  module.def("mgru_forward", &mgru_forward, "mGRU time loop, forward");
  module.def("mgru_backward", &mgru_backward, "mGRU time loop, backward");
}
