// When the CPU runs a convolution by Winograd F(2x2, 3x3) or F(4x4, 3x3): a choice of the CPU backend's plan
// (native/cpu/cpu_backend.cc), made when a graph is compiled. The policy is process-wide.
import { addon, callNative } from '../native';

export type WinogradPolicy = 'auto' | 'always' | 'f4x4' | 'never';

/**
 * 'auto' (default; env ONESTEP_WINOGRAD): 3x3 stride-1 convs with at least 32 channels in and out
 * on 32x32 inputs or larger (after any fused upsampling), by F(4x4, 3x3) from 64x64 in float32,
 * else F(2x2, 3x3); below that the direct kernel is as fast and needs no extra weights. 'always':
 * every 3x3 stride-1 conv by F(2x2, 3x3); 'f4x4': the same by F(4x4, 3x3) in float32 (F(2x2, 3x3)
 * at bf16); 'never'. Graphs compiled after the call follow it.
 */
export function setWinogradPolicy(p: WinogradPolicy): void {
  callNative(() => addon().setWinogradPolicy(p));
}

export function winogradPolicy(): WinogradPolicy {
  return addon().winogradPolicy();
}
