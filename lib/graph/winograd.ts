// When the CPU runs a convolution by Winograd F(2x2, 3x3): a choice of the CPU backend's plan
// (native/cpu/cpu_backend.cc), made when a graph is compiled. The policy is process-wide.
import { addon, callNative } from '../native';

export type WinogradPolicy = 'auto' | 'always' | 'never';

/**
 * 'auto' (default; env ONESTEP_WINOGRAD): 3x3 stride-1 convs with at least 32 channels in and out
 * on 64x64 inputs or larger (after any fused upsampling); below that the direct kernel is as fast
 * and needs no extra weights. 'always': every 3x3 stride-1 conv; 'never'. Graphs compiled after
 * the call follow it.
 */
export function setWinogradPolicy(p: WinogradPolicy): void {
  callNative(() => addon().setWinogradPolicy(p));
}

export function winogradPolicy(): WinogradPolicy {
  return addon().winogradPolicy();
}
