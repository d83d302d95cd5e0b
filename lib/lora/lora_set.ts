// LoRA adapters on a set of model components: files are read in any supported key style, every
// module's deltas (of all adapters, each with its own scale) are fused into a copy of the base
// weight with a native op (float32, rounded once to the fused dtype: float32 by default, the
// precision the CPU engine computes in, so a delta below a half-precision ulp is not lost), and
// installed in place of the checkpoint's weight. Unfusing just removes the replacements: the base weights are re-read from the mapped
// checkpoint, bit for bit as a fresh load.
//
// Components whose graphs run on CUDA get deferred fusions instead (docs/LORA.md, "On the GPU"): the
// replacement records base, parts and factors, the GPU fuses when it uploads the weight, and a scale
// change re-fuses the GPU copies in place: no CPU work, no re-upload, no graph rebuild.
import * as fs from 'fs';
import * as path from 'path';
import { ArgumentError, FileNotFoundError, OnestepError } from '../errors';
import type { Weights } from '../models/weights';
import { type NativeTensor, addon, callNative } from '../native';
import { SafetensorsFile } from '../safetensors';
import { LORA_FORMATS } from './formats';
import { LORA_COMPONENTS, type LoraComponent, type LoraModule, type LoraTarget, type SkippedKey } from './types';

/** A LoRA file with keys that did not map onto the model while `strict` was set. */
export class LoraError extends OnestepError {
  constructor(message: string) {
    super('ERR_ONESTEP_LORA', message);
  }
}

export interface LoraSpec {
  /** a .safetensors LoRA file */
  path: string;
  /** multiplier of the adapter's deltas (default 1) */
  scale?: number;
  /** adapter name (default: the file name without extension) */
  name?: string;
}

export interface LoraAdapterReport {
  name: string;
  path: string;
  format: string;
  scale: number;
  /** LoRA tensors in the file (down / up / alpha) */
  tensors: number;
  /** modules the file's tensors matched in the model */
  matched: number;
  /** by component */
  byComponent: Partial<Record<LoraComponent, number>>;
  skipped: SkippedKey[];
}

/**
 * One line on the tensors of an adapter that were not applied, reasons grouped with their counts
 * ("549 of 864 tensors were not applied: 549 the model has no text_encoder_2"); `detail` adds the
 * first keys (ONESTEP_DEBUG=1 sets it by default). Undefined when everything applied.
 */
export function skippedWarning(r: LoraAdapterReport, detail = !!process.env.ONESTEP_DEBUG): string | undefined {
  if (!r.skipped.length) return undefined;
  const reasons = new Map<string, number>();
  for (const s of r.skipped) {
    // one reason per kind: module names vary, the rest does not
    const kind = s.reason.replace(/'[^']*'/g, "'…'");
    reasons.set(kind, (reasons.get(kind) ?? 0) + 1);
  }
  const grouped = [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([why, n]) => `${n} ${why}`).join('; ');
  const more = reasons.size > 4 ? `; ${reasons.size - 4} more reasons` : '';
  const keys = detail ? ` — ${r.skipped.slice(0, 10).map((k) => `${k.key} (${k.reason})`).join('; ')}${r.skipped.length > 10 ? '; ...' : ''}` : ' (ONESTEP_DEBUG=1 lists them)';
  return `LoRA ${r.path}: ${r.skipped.length} of ${r.tensors} tensors were not applied: ${grouped}${more}${keys}`;
}

export interface LoraReport {
  adapters: LoraAdapterReport[];
  /** weights that now differ from the checkpoint, by component */
  fused: Partial<Record<LoraComponent, number>>;
  /** where each component's weights are fused: 'gpu' (deferred to the CUDA device's copies) or 'cpu' */
  fusedOn: Partial<Record<LoraComponent, 'cpu' | 'gpu'>>;
  /** components whose graphs must be rebuilt (new or removed replacements, or CPU-fused weights rewritten) */
  rebuilt: LoraComponent[];
}

/** Where a component's LoRA fusion runs: ONESTEP_LORA_FUSION=cpu forces the CPU, else the GPU for CUDA graphs. */
function fusionPlace(device: string): 'cpu' | 'gpu' {
  const v = process.env.ONESTEP_LORA_FUSION ?? 'auto';
  if (v !== 'auto' && v !== 'cpu') throw new ArgumentError(`ONESTEP_LORA_FUSION must be 'auto' or 'cpu', got ${JSON.stringify(v)}`);
  return v === 'auto' && device === 'cuda' ? 'gpu' : 'cpu';
}

interface Adapter {
  name: string;
  path: string;
  file: SafetensorsFile;
  format: string;
  modules: LoraModule[];
  skipped: SkippedKey[];
  tensors: number;
  scale: number;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Why LoRA parts cannot be fused into a weight of this shape (as the native op checks), or undefined. */
function shapeProblem(ws: readonly number[], parts: { down: NativeTensor; up: NativeTensor }[]): string | undefined {
  const str = (s: readonly number[]) => `[${s.join(', ')}]`;
  if (ws.length < 2) return `LoRA needs a 2-D or 4-D weight, got ${str(ws)}`;
  const N = ws[0];
  const K = ws.slice(1).reduce((x, y) => x * y, 1);
  for (const { down, up } of parts) {
    const r = down.shape[0];
    const dn = down.shape.reduce((x, y) => x * y, 1);
    const un = up.shape.reduce((x, y) => x * y, 1);
    if (down.shape.length < 2 || up.shape.length < 2) return 'LoRA tensors must be 2-D or 4-D';
    if (!(r > 0) || dn !== r * K) return `down ${str(down.shape)} does not match the weight ${str(ws)}`;
    if (up.shape[0] !== N || up.shape[1] !== r || un !== N * r) return `up ${str(up.shape)} must be [${N}, ${r}] (or [${N}, ${r}, 1, 1]) for down ${str(down.shape)}`;
  }
  return undefined;
}

export class LoraSet {
  private adapters: Adapter[] = [];
  private installed = new Map<LoraComponent, Map<string, NativeTensor>>();
  /** replacements that are deferred fusions (made on the GPU) */
  private deferred = new WeakSet<NativeTensor>();
  /**
   * The last apply() failed after it had started rewriting weights in place (e.g. out of GPU memory
   * part way): applying the previous adapters and scales again restores them.
   */
  interrupted = false;

  constructor(
    private readonly components: Partial<Record<LoraComponent, Weights>>,
    private readonly unetLayersPerBlock?: number,
    /** dtype of fused weights: 'F32' (default) or 'base' (the checkpoint's dtype, half the memory) */
    private readonly fusedDtype: 'F32' | 'base' = 'F32',
  ) {}

  private target(): LoraTarget {
    const cache = new Map<LoraComponent, Set<string>>();
    return {
      modules: (c) => {
        const w = this.components[c];
        if (!w) return undefined;
        let s = cache.get(c);
        if (!s) {
          s = new Set(w.keys().filter((k) => k.endsWith('.weight')).map((k) => k.slice(0, -'.weight'.length)));
          cache.set(c, s);
        }
        return s;
      },
      unetLayersPerBlock: this.unetLayersPerBlock,
    };
  }

  /** Reads LoRA files (does not fuse: call apply()). */
  add(specs: LoraSpec[], options: { strict?: boolean } = {}): LoraAdapterReport[] {
    const added: Adapter[] = [];
    try {
      for (const spec of specs) {
        if (!spec || typeof spec.path !== 'string') throw new ArgumentError('a LoRA needs a path');
        const scale = spec.scale ?? 1;
        if (!Number.isFinite(scale)) throw new ArgumentError(`LoRA ${spec.path}: scale must be a finite number, got ${spec.scale}`);
        if (!fs.existsSync(spec.path)) throw new FileNotFoundError(spec.path, 'LoRA file');
        const name = spec.name ?? path.basename(spec.path).replace(/\.safetensors$/, '');
        if ([...this.adapters, ...added].some((a) => a.name === name)) throw new ArgumentError(`a LoRA named '${name}' is already loaded (give it another name)`);
        const file = SafetensorsFile.open(spec.path);
        const keys = file.names();
        const format = LORA_FORMATS.find((f) => f.detect(keys));
        if (!format) {
          file.close();
          throw new LoraError(`${spec.path}: no LoRA key style recognised (kohya lora_unet_* / lora_te*, diffusers, PEFT); first keys: ${keys.slice(0, 3).join(', ')}`);
        }
        const alpha = (key: string) => (file.has(key) ? file.float32(key)[0] : undefined);
        const r = format.convert(keys, alpha, this.target());
        const a: Adapter = { name, path: spec.path, file, format: format.name, modules: r.modules, skipped: r.skipped, tensors: keys.length, scale };
        added.push(a);
        // not applied tensors: an error with strict, else reported (skippedWarning) once the fusion worked
        if (r.skipped.length && options.strict) throw new LoraError(skippedWarning(this.describe(a), true) as string);
        if (r.modules.length === 0) throw new LoraError(`${spec.path}: none of its tensors matches a module of this model`);
      }
    } catch (e) {
      for (const a of added) a.file.close();
      throw e;
    }
    this.adapters.push(...added);
    return added.map((a) => this.describe(a));
  }

  private describe(a: Adapter): LoraAdapterReport {
    const byComponent: Partial<Record<LoraComponent, number>> = {};
    for (const c of LORA_COMPONENTS) {
      const n = a.modules.filter((m) => m.component === c).length;
      if (n) byComponent[c] = n;
    }
    return { name: a.name, path: a.path, format: a.format, scale: a.scale, tensors: a.tensors, matched: a.modules.length, byComponent, skipped: a.skipped };
  }

  setScales(scales: Record<string, number>): void {
    for (const [name, s] of Object.entries(scales)) {
      const a = this.adapters.find((x) => x.name === name);
      if (!a) throw new ArgumentError(`no LoRA named '${name}' (loaded: ${this.adapters.map((x) => x.name).join(', ') || 'none'})`);
      if (!Number.isFinite(s)) throw new ArgumentError(`LoRA '${name}': scale must be a finite number`);
      a.scale = s;
    }
  }

  /** Every adapter's scale, by name. */
  scales(): Record<string, number> {
    return Object.fromEntries(this.adapters.map((a) => [a.name, a.scale]));
  }

  /** Removes adapters (all when no names are given). */
  remove(names?: string[]): void {
    const drop = names ? this.adapters.filter((a) => names.includes(a.name)) : this.adapters;
    for (const n of names ?? []) if (!this.adapters.some((a) => a.name === n)) throw new ArgumentError(`no LoRA named '${n}'`);
    for (const a of drop) a.file.close();
    this.adapters = this.adapters.filter((a) => !drop.includes(a));
  }

  get names(): string[] {
    return this.adapters.map((a) => a.name);
  }

  /**
   * Fuses every adapter into copies of the base weights (always from the checkpoint) and installs
   * them, replacing the previous fusion. A weight fused before is re-fused into the same memory
   * (no new allocation: scale changes stay cheap); all shapes are checked before anything is
   * written. Returns the components whose graphs must be rebuilt (deferred GPU fusions re-fused in
   * place need none).
   */
  apply(): { report: LoraReport; changed: LoraComponent[] } {
    const a = addon();
    const groups = new Map<string, { component: LoraComponent; module: string; sources: string[]; parts: { down: NativeTensor; up: NativeTensor; factor: number }[] }>();
    for (const ad of this.adapters) {
      if (ad.scale === 0) continue;
      for (const m of ad.modules) {
        const id = `${m.component}\u0000${m.module}`;
        let g = groups.get(id);
        if (!g) {
          g = { component: m.component, module: m.module, sources: [], parts: [] };
          groups.set(id, g);
        }
        g.sources.push(ad.path);
        const down = ad.file.tensor(m.down);
        const up = ad.file.tensor(m.up);
        const rank = down.shape[0];
        g.parts.push({ down, up, factor: ad.scale * (m.alpha !== undefined ? m.alpha / rank : 1) });
      }
    }
    const next = new Map<LoraComponent, Map<string, NativeTensor>>();
    const reused = new Set<NativeTensor>();
    const place = new Map<LoraComponent, 'cpu' | 'gpu'>();
    for (const c of Object.keys(this.components) as LoraComponent[]) place.set(c, fusionPlace((this.components[c] as Weights).device));
    const hostRead = new Set<LoraComponent>();
    let writing = false;
    this.interrupted = false;
    const bases = new Map<string, NativeTensor>();
    try {
      // every shape is checked before anything is written: re-fusion writes into the previous fused weights
      for (const [id, g] of groups) {
        const key = `${g.module}.weight`;
        const base = (this.components[g.component] as Weights).base(key);
        if (!base) throw new LoraError(`no weight '${key}' in the ${g.component}`);
        bases.set(id, base);
        const problem = shapeProblem(base.shape, g.parts);
        if (problem) throw new LoraError(`'${g.component}.${key}': ${problem} (LoRA ${[...new Set(g.sources)].join(', ')}: is it for another model?)`);
      }
      writing = true;
      for (const [id, g] of groups) {
        const key = `${g.module}.weight`;
        const base = bases.get(id) as NativeTensor;
        const dtype = this.fusedDtype === 'F32' ? 'F32' : base.dtype;
        const prev = this.installed.get(g.component)?.get(key);
        const gpu = place.get(g.component) === 'gpu';
        const into = prev && prev.dtype === dtype && sameShape(prev.shape, base.shape) && this.deferred.has(prev) === gpu ? prev : undefined;
        let fused: NativeTensor;
        try {
          if (gpu) {
            const r = callNative(() => a.deferLoraFusion(base, g.parts, `${g.component}.${key}`, dtype, into));
            fused = r.tensor;
            this.deferred.add(fused);
            if (r.hostWasRead) hostRead.add(g.component);
          } else {
            fused = callNative(() => a.fuseLora(base, g.parts, `${g.component}.${key}`, dtype, into));
          }
        } catch (e) {
          if (e instanceof OnestepError && e.code === 'ERR_ONESTEP_LORA') throw new LoraError(`${e.message} (LoRA ${[...new Set(g.sources)].join(', ')})`);
          throw e;
        }
        if (into) reused.add(into);
        let m = next.get(g.component);
        if (!m) next.set(g.component, (m = new Map()));
        m.set(key, fused);
      }
    } catch (e) {
      for (const m of next.values()) for (const t of m.values()) if (!reused.has(t)) t.dispose();
      this.interrupted = writing && reused.size > 0;
      throw e;
    } finally {
      for (const b of bases.values()) b.dispose();
      for (const g of groups.values()) for (const p of g.parts) {
        p.down.dispose();
        p.up.dispose();
      }
    }
    const changed: LoraComponent[] = [];
    for (const c of Object.keys(this.components) as LoraComponent[]) {
      const w = this.components[c] as Weights;
      const fresh = next.get(c) ?? new Map<string, NativeTensor>();
      const old = this.installed.get(c) ?? new Map<string, NativeTensor>();
      if (old.size === 0 && fresh.size === 0) continue;
      // deferred fusions re-fused in place (same replacements, no host bytes read): the GPU copies
      // the graphs hold are current, nothing to rebuild
      const same = fresh.size === old.size && [...fresh].every(([k, t]) => old.get(k) === t);
      if (same && place.get(c) === 'gpu' && !hostRead.has(c)) continue;
      w.setOverrides(fresh);
      for (const t of old.values()) if (!reused.has(t)) t.dispose();
      this.installed.set(c, fresh);
      changed.push(c);
    }
    const fusedCounts: Partial<Record<LoraComponent, number>> = {};
    const fusedOn: Partial<Record<LoraComponent, 'cpu' | 'gpu'>> = {};
    for (const [c, m] of next) {
      fusedCounts[c] = m.size;
      fusedOn[c] = place.get(c);
    }
    return { report: { adapters: this.adapters.map((x) => this.describe(x)), fused: fusedCounts, fusedOn, rebuilt: changed }, changed };
  }

  /** The fused replacement of a weight (tests, debugging), by component and full key. */
  fusedWeight(component: LoraComponent, key: string): NativeTensor | undefined {
    return this.installed.get(component)?.get(key);
  }

  dispose(): void {
    for (const a of this.adapters) a.file.close();
    this.adapters = [];
    for (const [c, m] of this.installed) {
      this.components[c]?.setOverrides(new Map());
      for (const t of m.values()) t.dispose();
    }
    this.installed.clear();
  }
}
