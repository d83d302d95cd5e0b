// `FILE[:SCALE]`, as the CLIs take LoRAs: the scale is a number after the last ':' (so a Windows
// drive letter stays part of the path); no number means scale 1.
import { ArgumentError } from '../errors';
import type { LoraSpec } from './lora_set';

export function parseLoraArg(v: string): LoraSpec & { scale: number } {
  const m = /^(.+):([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)$/i.exec(v);
  const p = m ? m[1] : v;
  if (!p) throw new ArgumentError(`a LoRA needs a file, got '${v}'`);
  return { path: p, scale: m ? Number(m[2]) : 1 };
}
