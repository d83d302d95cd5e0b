// When a convolution runs by Winograd F(2x2, 3x3), and the transformed weights it needs
// (computed once per weight, cached for the weight's lifetime).
import { type NativeTensor, addon, callNative } from '../native';
import type { Conv2dOptions, Value } from './builder';

export type WinogradPolicy = 'auto' | 'always' | 'never';

let policy: WinogradPolicy = (['auto', 'always', 'never'] as const).find((p) => p === process.env.ONESTEP_WINOGRAD) ?? 'auto';

/** 'auto' (default; env ONESTEP_WINOGRAD): 3x3 stride-1 convs with at least 32 channels in and out on 64x64 inputs or larger (after any fused upsampling); below that the direct kernel is as fast and needs no extra weights. */
export function setWinogradPolicy(p: WinogradPolicy): void {
  policy = p;
}

export function winogradPolicy(): WinogradPolicy {
  return policy;
}

const transformed = new WeakMap<NativeTensor, NativeTensor>();

/** The transformed weight for this conv when it should run by Winograd, else undefined. */
export function winogradFor(w: NativeTensor, x: Value, o: Conv2dOptions): NativeTensor | undefined {
  if (policy === 'never') return undefined;
  const [co, kh, kw, ci] = w.shape;
  const stride = o.stride ?? 1;
  const strided = typeof stride === 'number' ? stride !== 1 : stride[0] !== 1 || stride[1] !== 1;
  if (w.shape.length !== 4 || kh !== 3 || kw !== 3 || strided || x.shape.length !== 4) return undefined;
  if (policy === 'auto') {
    const up = o.upsample ?? 1;
    const pixels = x.shape[1] * up * x.shape[2] * up;
    if (ci < 32 || co < 32 || pixels < 64 * 64) return undefined;
  }
  let u = transformed.get(w);
  if (!u) {
    u = callNative(() => addon().prepareWinogradWeight(w));
    transformed.set(w, u);
  }
  return u;
}

/** Frees the transformed twin of a conv weight now (the weight's owner is closing). */
export function releaseWinograd(w: NativeTensor): void {
  const u = transformed.get(w);
  if (u) {
    u.dispose();
    transformed.delete(w);
  }
}
