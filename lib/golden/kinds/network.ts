// Network goldens (golden/, sizes/, controlnet/ *.safetensors): one case per file, described by
// its __metadata__.case JSON. The case's `kind` picks a component runner (kinds without one are
// reported as TODO). Before anything runs, every field of the case must be one the runner reads
// or a description (lib/golden/fields.ts); every listed input must be in the file; after the run,
// every listed output the file holds must have been compared.
import * as path from 'path';
import { openSafetensors } from '../../safetensors';
import type { SafetensorsFile } from '../../safetensors';
import { Comparison } from '../compare';
import { CaseFieldError, checkFields, isObject, listedNames } from '../fields';
import { CASE_FOLDERS } from '../folders';
import type { CaseResult, FixtureContext, GoldenKind } from '../types';
import { CONTROLNET_FIELDS, controlnetCase } from './controlnet';
import { LORA_FIELDS, loraCase } from './lora';
import { CONTROLNET_PIPELINE_FIELDS, PIPELINE_FIELDS, pipelineCase } from './pipeline';
import { textEncoderCase } from './text_encoder';
import { UNET_FIELDS, unetCase } from './unet';
import { CD_DECODE_FIELDS, VAE_FIELDS, cdDecodeCase, cdEncodeCase, taesdDecodeCase, taesdEncodeCase, vaeDecodeCase, vaeEncodeCase } from './vae';

export interface GoldenCase {
  kind: string;
  model: string;
  component?: string;
  tolerance: { fp32_rel_l2: number; fp16_rel_l2?: number };
  [key: string]: unknown;
}

/** Runs one golden file's case and fills the comparison; `modelDir` is models/<model>. */
export type CaseRunner = (golden: SafetensorsFile, meta: GoldenCase, modelDir: string, cmp: Comparison, ctx: FixtureContext) => Promise<void>;

interface Runner {
  run: CaseRunner;
  /** the case fields this runner reads (besides the descriptive ones) */
  fields: readonly string[];
}

const runners: Record<string, Runner> = {
  text_encoder: { run: textEncoderCase, fields: ['component', 'prompts', 'padding', 'tokenizer'] },
  unet: { run: unetCase, fields: UNET_FIELDS },
  pipeline: { run: pipelineCase, fields: PIPELINE_FIELDS },
  lora: { run: loraCase, fields: LORA_FIELDS },
  controlnet: { run: controlnetCase, fields: CONTROLNET_FIELDS },
  controlnet_pipeline: { run: pipelineCase, fields: CONTROLNET_PIPELINE_FIELDS },
  vae_decode: { run: vaeDecodeCase, fields: VAE_FIELDS },
  vae_encode: { run: vaeEncodeCase, fields: VAE_FIELDS },
  taesd_decode: { run: taesdDecodeCase, fields: VAE_FIELDS },
  taesd_encode: { run: taesdEncodeCase, fields: VAE_FIELDS },
  consistency_decoder_decode: { run: cdDecodeCase, fields: CD_DECODE_FIELDS },
  consistency_decoder_encode: { run: cdEncodeCase, fields: VAE_FIELDS },
};

/** The case's metadata JSON: an object with a kind and a model. */
function parseCase(f: SafetensorsFile): GoldenCase {
  const raw = f.metadata?.case;
  if (!raw) throw new CaseFieldError('no __metadata__.case in the golden file');
  let meta: unknown;
  try {
    meta = JSON.parse(raw);
  } catch (e) {
    throw new CaseFieldError(`__metadata__.case is not JSON: ${(e as Error).message}`);
  }
  if (!isObject(meta) || typeof meta.kind !== 'string' || typeof meta.model !== 'string') throw new CaseFieldError('the case needs a kind and a model');
  return meta as GoldenCase;
}

/** How much larger a bf16 tolerance is than the case's fp16 one: 2^-8 / 2^-11. */
export const BF16_OVER_FP16 = 8;

/** Checked before the work: only known fields, a tolerance, the listed inputs present. Returns the
 * tolerance, given whether the engine computed with bf16 operands. */
function checkCase(f: SafetensorsFile, meta: GoldenCase, runner: Runner, ctx: FixtureContext): (bf16Operands: boolean) => number {
  checkFields(meta, runner.fields, 'case field');
  const t = meta.tolerance as unknown;
  if (!isObject(t) || typeof t.fp32_rel_l2 !== 'number' || (t.fp16_rel_l2 !== undefined && typeof t.fp16_rel_l2 !== 'number')) throw new CaseFieldError('the case needs tolerance.fp32_rel_l2 (and fp16_rel_l2 a number if given)');
  for (const name of listedNames(meta.inputs)) if (!f.has(name)) throw new CaseFieldError(`input '${name}' listed by the case is not in the file`);
  const fp16 = (t.fp16_rel_l2 as number | undefined) ?? 1e-2;
  const fp32 = t.fp32_rel_l2 as number;
  // bf16 operands keep 8 significant bits where fp16 keeps 11: the case's fp16 budget scaled by
  // the ratio of their unit roundoffs, 2^-8 / 2^-11 (docs/PERFORMANCE.md, "bf16 fidelity"); on
  // CUDA that is the graphs that need fp32's range (force_upcast VAEs, docs/CUDA.md)
  if (ctx.device === 'cuda') return (bf16) => (bf16 ? fp16 * BF16_OVER_FP16 : fp16);
  if (ctx.precision === 'bf16') return () => fp16 * BF16_OVER_FP16;
  return () => fp32;
}

const folders = CASE_FOLDERS.filter((d) => d.kind === 'network').map((d) => d.name).join('|');
const NETWORK_FILE = new RegExp(`(^|/)(${folders})/[^/]+\\.safetensors$`);

export const networkKind: GoldenKind = {
  kind: 'network',
  matches: (rel) => NETWORK_FILE.test(rel),
  async run(file, ctx): Promise<CaseResult[]> {
    let name = path.basename(file, '.safetensors');
    let f: SafetensorsFile;
    try {
      f = openSafetensors(file);
    } catch (e) {
      return [{ status: 'FAIL', kind: 'network', name, detail: `cannot read the golden: ${(e as Error).message}` }];
    }
    try {
      let meta: GoldenCase;
      try {
        meta = parseCase(f);
      } catch (e) {
        return [{ status: 'FAIL', kind: 'network', name, detail: (e as Error).message }];
      }
      // with single files given, only the goldens of their models run, loaded from them
      const single = ctx.singleFiles?.[meta.model];
      if (ctx.singleFiles && !single) return [];
      if (single) name = `${name} [${path.basename(single)}]`;
      const runner = runners[meta.kind];
      if (!runner) return [{ status: 'TODO', kind: meta.kind, name, detail: `${meta.kind} goldens need the engine (not implemented yet)` }];
      let tolFor: (bf16Operands: boolean) => number;
      try {
        tolFor = checkCase(f, meta, runner, ctx);
      } catch (e) {
        return [{ status: 'FAIL', kind: meta.kind, name, detail: (e as Error).message }];
      }
      const cmp = new Comparison();
      try {
        await runner.run(f, meta, path.join(ctx.root, 'models', meta.model), cmp, ctx);
        const missed = listedNames(meta.outputs).filter((o) => f.has(o) && !cmp.keys.has(o));
        if (missed.length) throw new CaseFieldError(`output${missed.length > 1 ? 's' : ''} ${missed.join(', ')} listed by the case ${missed.length > 1 ? 'were' : 'was'} not compared`);
      } catch (e) {
        const err = e as Error;
        return [{ status: 'FAIL', kind: meta.kind, name, detail: err instanceof CaseFieldError ? err.message : `${err.name}: ${err.message}` }];
      }
      const worst = cmp.worst;
      const tol = tolFor(cmp.bf16Operands);
      const ok = cmp.items.length > 0 && worst.value <= tol;
      return [
        {
          status: ok ? 'PASS' : 'FAIL',
          kind: meta.kind,
          name,
          metric: 'rel_l2',
          value: worst.value,
          tol,
          detail: ok ? undefined : cmp.items.length ? `worst ${worst.name}; ${cmp.describe()}` : 'nothing compared',
        },
      ];
    } finally {
      f.close();
    }
  },
};
