// Plain float64 reference implementations of every op, for the op parity harness. Written for
// clarity, not speed: NHWC activations, torch-layout weights ([N, K] linear, [Co, Ci, kh, kw] conv).
'use strict';

const ACT = {
  0: (x) => x,
  1: (x) => x / (1 + Math.exp(-x)),
  2: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  3: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  4: (x) => x / (1 + Math.exp(-1.702 * x)),
  5: (x) => Math.max(0, x),
  6: (x) => Math.tanh(x),
  7: (x) => 1 / (1 + Math.exp(-x)),
  8: (x) => Math.exp(x),
};

// Abramowitz-Stegun 7.1.26 is too coarse; use a series / continued fraction accurate to ~1e-15.
function erf(x) {
  const sign = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  if (a < 3) {
    // Taylor series
    let sum = a, term = a, n = 0;
    while (Math.abs(term) > 1e-17 * Math.abs(sum)) {
      n++;
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
      if (n > 200) break;
    }
    return (sign * 2 * sum) / Math.sqrt(Math.PI);
  }
  // continued fraction for erfc
  let f = 0;
  for (let k = 60; k >= 1; k--) f = k / 2 / (a + f);
  return sign * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f));
}

const numel = (s) => s.reduce((p, q) => p * q, 1);

function linear(x, xs, w, ws, bias, act = 0, residual) {
  const [N, K] = ws;
  const M = numel(xs) / K;
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      if (bias) s += bias[n];
      s = ACT[act](s);
      if (residual) s += residual[m * N + n];
      y[m * N + n] = s;
    }
  return y;
}

// x NHWC [B,H,W,Ci]; w torch [Co,Ci,kh,kw]
function conv2d(x, xs, w, ws, bias, { stride = [1, 1], pad = [0, 0, 0, 0], up = 1, act = 0, residual } = {}) {
  const [B, H, W, Ci] = xs;
  const [Co, , kh, kw] = ws;
  const [pt, pl, pb, pr] = pad;
  const Hu = H * up, Wu = W * up;
  const Ho = Math.floor((Hu + pt + pb - kh) / stride[0]) + 1;
  const Wo = Math.floor((Wu + pl + pr - kw) / stride[1]) + 1;
  const y = new Float64Array(B * Ho * Wo * Co);
  for (let b = 0; b < B; b++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++)
        for (let co = 0; co < Co; co++) {
          let s = bias ? bias[co] : 0;
          for (let ky = 0; ky < kh; ky++)
            for (let kx = 0; kx < kw; kx++) {
              const iy = oy * stride[0] + ky - pt, ix = ox * stride[1] + kx - pl;
              if (iy < 0 || iy >= Hu || ix < 0 || ix >= Wu) continue;
              const src = ((b * H + Math.floor(iy / up)) * W + Math.floor(ix / up)) * Ci;
              for (let ci = 0; ci < Ci; ci++) s += x[src + ci] * w[((co * Ci + ci) * kh + ky) * kw + kx];
            }
          s = ACT[act](s);
          const o = ((b * Ho + oy) * Wo + ox) * Co + co;
          if (residual) s += residual[o];
          y[o] = s;
        }
  return { y, shape: [B, Ho, Wo, Co] };
}

function groupNorm(x, xs, gamma, beta, groups, eps, act = 0) {
  const B = xs[0], C = xs[xs.length - 1], P = numel(xs) / (B * C), cpg = C / groups;
  const y = new Float64Array(x.length);
  for (let b = 0; b < B; b++)
    for (let g = 0; g < groups; g++) {
      let s = 0, n = 0;
      for (let p = 0; p < P; p++) for (let c = g * cpg; c < (g + 1) * cpg; c++) { s += x[(b * P + p) * C + c]; n++; }
      const mean = s / n;
      let v = 0;
      for (let p = 0; p < P; p++) for (let c = g * cpg; c < (g + 1) * cpg; c++) v += (x[(b * P + p) * C + c] - mean) ** 2;
      const rstd = 1 / Math.sqrt(v / n + eps);
      for (let p = 0; p < P; p++)
        for (let c = g * cpg; c < (g + 1) * cpg; c++) {
          const i = (b * P + p) * C + c;
          y[i] = ACT[act]((x[i] - mean) * rstd * gamma[c] + beta[c]);
        }
    }
  return y;
}

function layerNorm(x, xs, gamma, beta, eps) {
  const C = xs[xs.length - 1], rows = x.length / C;
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x[r * C + c];
    const mean = s / C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) y[r * C + c] = (x[r * C + c] - mean) * rstd * gamma[c] + beta[c];
  }
  return y;
}

// scale * q_i . k_j of query i against keys j < vis, head h of sample b (float64)
function attentionScores(q, k, b, h, i, Nq, Nk, HD, D, scale, vis) {
  const s = new Float64Array(Nk);
  for (let j = 0; j < vis; j++) {
    let d = 0;
    for (let t = 0; t < D; t++) d += q[(b * Nq + i) * HD + h * D + t] * k[(b * Nk + j) * HD + h * D + t];
    s[j] = d * scale;
  }
  return s;
}

// roundP: applied to each probability before it weighs V (bf16 operands round them); tieSlack(p):
// how far a kernel's rounding of p may fall from roundP's (p within its float32 error of a
// rounding midpoint), summed times |v| into y.slack per output
function attention(q, qs, k, ks, v, vs, heads, scale, causal, roundP = (p) => p, tieSlack = () => 0) {
  const [B, Nq, HD] = qs, Nk = ks[1], HDv = vs[2];
  const D = HD / heads, Dv = HDv / heads;
  const y = new Float64Array(B * Nq * HDv);
  y.slack = new Float64Array(y.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < Nq; i++) {
        const vis = causal ? Math.min(Nk, i + 1) : Nk;
        const s = attentionScores(q, k, b, h, i, Nq, Nk, HD, D, scale, vis);
        const mx = Math.max(...s.subarray(0, vis));
        let sum = 0;
        for (let j = 0; j < vis; j++) { s[j] = Math.exp(s[j] - mx); sum += s[j]; }
        for (let t = 0; t < Dv; t++) {
          let o = 0;
          let sl = 0;
          for (let j = 0; j < vis; j++) {
            const vj = v[(b * Nk + j) * HDv + h * Dv + t];
            o += roundP(s[j] / sum) * vj;
            sl += tieSlack(s[j] / sum) * Math.abs(vj);
          }
          y[(b * Nq + i) * HDv + h * Dv + t] = o;
          y.slack[(b * Nq + i) * HDv + h * Dv + t] = sl;
        }
      }
  return y;
}

// attention as a kernel with an online softmax computes it: keys in blocks of `keyBlock`, each
// block's probabilities taken against the row's running max, rounded by roundP, weighed into the
// output, and the output rescaled as the max grows; the sum of exponentials unrounded; normalised
// at the end. Mathematically the softmax; the rounding is the kernel's.
function attentionBlocked(q, qs, k, ks, v, vs, heads, scale, causal, keyBlock, roundP, tieSlack = () => 0) {
  const [B, Nq, HD] = qs, Nk = ks[1], HDv = vs[2];
  const D = HD / heads, Dv = HDv / heads;
  const y = new Float64Array(B * Nq * HDv);
  y.slack = new Float64Array(y.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < Nq; i++) {
        const vis = causal ? Math.min(Nk, i + 1) : Nk;
        const s = attentionScores(q, k, b, h, i, Nq, Nk, HD, D, scale, vis);
        const o = new Float64Array(Dv);
        const sl = new Float64Array(Dv);
        let m = -Infinity;
        let l = 0;
        for (let j0 = 0; j0 < vis; j0 += keyBlock) {
          const j1 = Math.min(vis, j0 + keyBlock);
          const mb = Math.max(m, ...s.subarray(j0, j1));
          const c = Math.exp(m - mb);
          l *= c;
          for (let t = 0; t < Dv; t++) {
            o[t] *= c;
            sl[t] *= c;
          }
          for (let j = j0; j < j1; j++) {
            const p = Math.exp(s[j] - mb);
            l += p;
            const pr = roundP(p);
            const tie = tieSlack(p);
            for (let t = 0; t < Dv; t++) {
              const vj = v[(b * Nk + j) * HDv + h * Dv + t];
              o[t] += pr * vj;
              sl[t] += tie * Math.abs(vj);
            }
          }
          m = mb;
        }
        for (let t = 0; t < Dv; t++) {
          y[(b * Nq + i) * HDv + h * Dv + t] = o[t] / l;
          y.slack[(b * Nq + i) * HDv + h * Dv + t] = sl[t] / l;
        }
      }
  return y;
}

function broadcast(a, as, b, bs, f) {
  const r = as.length;
  const full = [...Array(r - bs.length).fill(1), ...bs];
  const y = new Float64Array(a.length);
  const idx = new Array(r).fill(0);
  for (let i = 0; i < a.length; i++) {
    let rem = i;
    for (let d = r - 1; d >= 0; d--) { idx[d] = rem % as[d]; rem = Math.floor(rem / as[d]); }
    let bi = 0;
    for (let d = 0; d < r; d++) bi = bi * full[d] + (full[d] === 1 ? 0 : idx[d]);
    y[i] = f(a[i], b[bi]);
  }
  return y;
}

function unary(x, { act = 0, a = 1, b = 0, c = 1, d = 0, lo = -Infinity, hi = Infinity }) {
  return Float64Array.from(x, (v) => Math.min(Math.max(c * ACT[act](a * v + b) + d, lo), hi));
}

function geglu(x, xs) {
  const C2 = xs[xs.length - 1], C = C2 / 2, rows = x.length / C2;
  const y = new Float64Array(rows * C);
  for (let r = 0; r < rows; r++) for (let j = 0; j < C; j++) y[r * C + j] = x[r * C2 + j] * ACT[2](x[r * C2 + C + j]);
  return y;
}

function concat(a, as, b, bs) {
  const ca = as[as.length - 1], cb = bs[bs.length - 1], rows = a.length / ca;
  const y = new Float64Array(rows * (ca + cb));
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < ca; j++) y[r * (ca + cb) + j] = a[r * ca + j];
    for (let j = 0; j < cb; j++) y[r * (ca + cb) + ca + j] = b[r * cb + j];
  }
  return y;
}

function upsample(x, xs, f) {
  return resizeNearest(x, xs, xs[1] * f, xs[2] * f);
}

/** NHWC nearest resize, source index floor(dst * in / out) in exact arithmetic (torch's float rule agrees where in and out are coprime or out = 2 in). */
function resizeNearest(x, xs, Ho, Wo) {
  const [B, H, W, C] = xs;
  const y = new Float64Array(B * Ho * Wo * C);
  for (let b = 0; b < B; b++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++)
        for (let c = 0; c < C; c++) y[((b * Ho + oy) * Wo + ox) * C + c] = x[((b * H + Math.floor((oy * H) / Ho)) * W + Math.floor((ox * W) / Wo)) * C + c];
  return y;
}

// float32 step by step, as torch computes it (arguments reach 1e6 radians, so float64 would differ)
function timestepEmbedding(t, dim, flip, shift, scale, form = 'timestep') {
  const f = Math.fround;
  const half = dim / 2;
  const ln = f(Math.log(10000));
  const y = new Float64Array(t.length * dim);
  for (let b = 0; b < t.length; b++)
    for (let k = 0; k < half; k++) {
      const e = form === 'guidance' ? f(k * f(-f(ln / f(half - shift)))) : f(f(-ln * k) / f(half - shift));
      const arg = f(scale * f(t[b] * f(Math.exp(e))));
      y[b * dim + (flip ? half + k : k)] = Math.sin(arg);
      y[b * dim + (flip ? k : half + k)] = Math.cos(arg);
    }
  return y;
}

function permute(x, xs, perm) {
  const r = xs.length, os = perm.map((p) => xs[p]);
  const strides = new Array(r);
  let st = 1;
  for (let i = r - 1; i >= 0; i--) { strides[i] = st; st *= xs[i]; }
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    let rem = i, off = 0;
    for (let d = r - 1; d >= 0; d--) { off += (rem % os[d]) * strides[perm[d]]; rem = Math.floor(rem / os[d]); }
    y[i] = x[off];
  }
  return y;
}

function slice(x, xs, axis, start, len) {
  let outer = 1, inner = 1;
  for (let i = 0; i < axis; i++) outer *= xs[i];
  for (let i = axis + 1; i < xs.length; i++) inner *= xs[i];
  const y = new Float64Array(outer * len * inner);
  for (let o = 0; o < outer; o++) for (let j = 0; j < len * inner; j++) y[o * len * inner + j] = x[(o * xs[axis] + start) * inner + j];
  return y;
}

function avgPool(x, xs, k) {
  const [B, H, W, C] = xs;
  const Ho = Math.floor(H / k), Wo = Math.floor(W / k);
  const y = new Float64Array(B * Ho * Wo * C);
  for (let b = 0; b < B; b++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++)
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let dy = 0; dy < k; dy++) for (let dx = 0; dx < k; dx++) s += x[((b * H + oy * k + dy) * W + ox * k + dx) * C + c];
          y[((b * Ho + oy) * Wo + ox) * C + c] = s / (k * k);
        }
  return y;
}

/** ||a - b|| / ||b|| */
// the fused sampler step: out is [B, ...] or, with guidance, [2B, ...] = [uncond; cond]
function schedulerStep(x, out, c, noise, select) {
  const n = x.length;
  const cfg = out.length === 2 * n;
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const e = cfg ? c[6] * out[i] + c[7] * out[n + i] : out[i];
    const d = c[0] * x[i] + c[1] * e;
    y[i] = select === 'denoised' ? d : c[2] * x[i] + c[3] * e + c[4] * d + (noise ? c[5] * noise[i] : 0);
  }
  return y;
}

function relL2(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

module.exports = { ACT, avgPool, linear, conv2d, groupNorm, layerNorm, attention, attentionBlocked, broadcast, unary, geglu, concat, upsample, resizeNearest, timestepEmbedding, permute, slice, schedulerStep, relL2, numel };
