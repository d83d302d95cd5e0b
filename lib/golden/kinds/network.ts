// golden/*.safetensors: one case per file, described by its __metadata__.case JSON. The case's
// `kind` picks a component runner; kinds without one are reported as TODO.
import * as path from 'path';
import { openSafetensors } from '../../safetensors';
import type { SafetensorsFile } from '../../safetensors';
import { Comparison } from '../compare';
import type { CaseResult, FixtureContext, GoldenKind } from '../types';
import { loraCase } from './lora';
import { NotYetError, pipelineCase } from './pipeline';
import { textEncoderCase } from './text_encoder';
import { unetCase } from './unet';
import { cdDecodeCase, cdEncodeCase, taesdDecodeCase, taesdEncodeCase, vaeDecodeCase, vaeEncodeCase } from './vae';

export interface GoldenCase {
  kind: string;
  model: string;
  component?: string;
  tolerance: { fp32_rel_l2: number; fp16_rel_l2?: number };
  [key: string]: unknown;
}

/** Runs one golden file's case and fills the comparison; `modelDir` is models/<model>. */
export type CaseRunner = (golden: SafetensorsFile, meta: GoldenCase, modelDir: string, cmp: Comparison, ctx: FixtureContext) => Promise<void>;

const runners: Record<string, CaseRunner> = {
  text_encoder: textEncoderCase,
  unet: unetCase,
  pipeline: pipelineCase,
  lora: loraCase,
  vae_decode: vaeDecodeCase,
  vae_encode: vaeEncodeCase,
  taesd_decode: taesdDecodeCase,
  taesd_encode: taesdEncodeCase,
  consistency_decoder_decode: cdDecodeCase,
  consistency_decoder_encode: cdEncodeCase,
};

export const networkKind: GoldenKind = {
  kind: 'network',
  matches: (rel) => /(^|\/)golden\/[^/]+\.safetensors$/.test(rel),
  async run(file, ctx): Promise<CaseResult[]> {
    let name = path.basename(file, '.safetensors');
    const f = openSafetensors(file);
    try {
      const raw = f.metadata?.case;
      if (!raw) return [{ status: 'FAIL', kind: 'network', name, detail: 'no __metadata__.case in the golden file' }];
      const meta = JSON.parse(raw) as GoldenCase;
      // with single files given, only the goldens of their models run, loaded from them
      const single = ctx.singleFiles?.[meta.model];
      if (ctx.singleFiles && !single) return [];
      if (single) name = `${name} [${path.basename(single)}]`;
      const runner = runners[meta.kind];
      if (!runner) return [{ status: 'TODO', kind: meta.kind, name, detail: `${meta.kind} goldens need the engine (not implemented yet)` }];
      const tol = ctx.device === 'cuda' ? (meta.tolerance.fp16_rel_l2 ?? 1e-2) : meta.tolerance.fp32_rel_l2;
      const cmp = new Comparison();
      try {
        await runner(f, meta, path.join(ctx.root, 'models', meta.model), cmp, ctx);
      } catch (e) {
        if (e instanceof NotYetError) return [{ status: 'TODO', kind: meta.kind, name, detail: e.message }];
        return [{ status: 'FAIL', kind: meta.kind, name, detail: `${(e as Error).name}: ${(e as Error).message}` }];
      }
      const worst = cmp.worst;
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
