// float32 arithmetic as torch / numpy do it, so that schedules come out bit for bit.

export const f32 = Math.fround;

/**
 * fused multiply-add rounded once to float32 (a, b, c float32). a*b is exact in double; the sum is
 * made exact with TwoSum and the tie case of the double-to-float rounding is resolved by the
 * residual, so the result equals C's fmaf.
 */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  const r = f32(s);
  if (err === 0 || r === s) return r;
  // s lies between two floats; if it is exactly their midpoint the residual decides the side
  const other = s > r ? f32Next(r, Infinity) : f32Next(r, -Infinity);
  const mid = (r + other) / 2;
  if (s === mid) return (err > 0) === (other > r) ? other : r;
  return r;
}

function f32Next(x: number, toward: number): number {
  const buf = new Float32Array([x]);
  const u = new Int32Array(buf.buffer);
  if (x === 0) {
    u[0] = toward > 0 ? 1 : 0x80000001 | 0;
  } else if ((x > 0) === (toward > x)) {
    u[0] += 1;
  } else {
    u[0] -= 1;
  }
  return buf[0];
}

/**
 * torch.linspace(start, end, n, dtype=float32) as torch's CPU kernel computes it: float step;
 * blocks of 8 lanes whose base is start + step*idx (or end - step*(n-1-idx) past the half),
 * contracted into one FMA by the compiler, then base + lane*step.
 */
export function torchLinspaceF32(start: number, end: number, n: number): Float32Array {
  const s = f32(start);
  const e = f32(end);
  const out = new Float32Array(n);
  if (n === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (n - 1));
  const half = Math.floor(n / 2);
  const V = 8;
  let idx = 0;
  for (; idx + V <= n; idx += V) {
    const base = idx < half ? fmaf(step, idx, s) : fmaf(-step, n - idx - 1, e);
    for (let l = 0; l < V; l++) out[idx + l] = f32(base + f32(l * step));
  }
  for (; idx < n; idx++) out[idx] = idx < half ? fmaf(step, idx, s) : fmaf(-step, n - idx - 1, e);
  return out;
}

/** torch.cumprod on a float32 CPU tensor: a double accumulator, each value rounded to float32. */
export function torchCumprodF32(x: ArrayLike<number>): Float32Array {
  const out = new Float32Array(x.length);
  let acc = 1;
  for (let i = 0; i < x.length; i++) {
    acc *= x[i];
    out[i] = acc;
  }
  return out;
}

/** numpy.round: round half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
