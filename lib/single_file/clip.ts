// Text encoders of the original layouts, to Hugging Face CLIPTextModel names:
// - Hugging Face CLIP under a prefix (SD1.x `cond_stage_model.transformer.`, SDXL encoder 1
//   `conditioner.embedders.0.transformer.`); old files lack the `text_model.` level.
// - OpenCLIP (SD2.x `cond_stage_model.model.`, SD-Turbo `conditioner.embedders.0.model.`, SDXL
//   encoder 2 `conditioner.embedders.1.model.`): q / k / v packed in `in_proj_weight` (rows),
//   `text_projection` stored transposed.
import { ConfigError } from '../errors';
import type { Json } from '../models/config';
import type { ComponentPlan, HeaderIndex, Target } from './types';
import { indices, shapeOf, under } from './util';

function clipConfig(token: number[], positions: number[], layers: number, fc1: number[]): Json {
  return {
    hidden_size: token[1],
    vocab_size: token[0],
    max_position_embeddings: positions[0],
    num_hidden_layers: layers,
    intermediate_size: fc1[0],
  };
}

export function planCLIP(h: HeaderIndex, p: string): ComponentPlan {
  const tensors = new Map<string, Target>();
  for (const rest of under(h, p)) {
    const name = rest.startsWith('text_model.') ? rest : `text_model.${rest}`;
    tensors.set(name, { key: `${p}${rest}` });
  }
  const get = (n: string, what: string) => {
    const t = tensors.get(n);
    if (!t) throw new ConfigError(`single-file checkpoint: missing '${p}${n}' (${what})`);
    return shapeOf(h, t.key, what);
  };
  const layers = indices(tensors.keys(), 'text_model.encoder.layers.').length;
  const derived = clipConfig(
    get('text_model.embeddings.token_embedding.weight', 'token embedding'),
    get('text_model.embeddings.position_embedding.weight', 'position embedding'),
    layers,
    get('text_model.encoder.layers.0.mlp.fc1.weight', 'MLP width'),
  );
  derived.architectures = ['CLIPTextModel'];
  return { derived, tensors };
}

const OPENCLIP_LAYER: Record<string, string> = {
  ln_1: 'layer_norm1',
  ln_2: 'layer_norm2',
  'attn.out_proj': 'self_attn.out_proj',
  'mlp.c_fc': 'mlp.fc1',
  'mlp.c_proj': 'mlp.fc2',
};

/**
 * `skipLayers`: resblock indices to leave out (SD2: diffusers drops resblock 23 by name: its text
 * encoder stops before the last layer of OpenCLIP-H). `projection`: SDXL encoder 2 has one.
 */
export function planOpenCLIP(h: HeaderIndex, p: string, options: { projection: boolean; skipLayers?: number[] }): ComponentPlan & { ignored: string[] } {
  const tensors = new Map<string, Target>();
  const ignored: string[] = [];
  const skip = new Set(options.skipLayers ?? []);
  const token = shapeOf(h, `${p}token_embedding.weight`, 'token embedding');
  const d = token[1];
  for (const rest of under(h, p)) {
    const key = `${p}${rest}`;
    let m: RegExpExecArray | null;
    if (rest === 'token_embedding.weight') tensors.set('text_model.embeddings.token_embedding.weight', { key });
    else if (rest === 'positional_embedding') tensors.set('text_model.embeddings.position_embedding.weight', { key });
    else if ((m = /^ln_final\.(weight|bias)$/.exec(rest))) tensors.set(`text_model.final_layer_norm.${m[1]}`, { key });
    else if (rest === 'text_projection' && options.projection) tensors.set('text_projection.weight', { key, transpose: true });
    else if ((m = /^transformer\.resblocks\.(\d+)\.(attn\.in_proj|.+)[._](weight|bias)$/.exec(rest))) {
      const [, n, mod, wb] = m;
      if (skip.has(Number(n))) {
        ignored.push(key);
        continue;
      }
      const layer = `text_model.encoder.layers.${n}`;
      if (mod === 'attn.in_proj') {
        const s = shapeOf(h, key, 'packed q/k/v');
        if (s[0] !== 3 * d) throw new ConfigError(`single-file checkpoint: '${key}' is [${s.join(', ')}], expected ${3 * d} rows (q, k, v of width ${d})`);
        ['q_proj', 'k_proj', 'v_proj'].forEach((proj, i) => tensors.set(`${layer}.self_attn.${proj}.${wb}`, { key, rows: [i * d, (i + 1) * d] }));
      } else if (OPENCLIP_LAYER[mod]) {
        tensors.set(`${layer}.${OPENCLIP_LAYER[mod]}.${wb}`, { key });
      }
    }
  }
  const layers = indices(h.keys(), `${p}transformer.resblocks.`).filter((n) => !skip.has(n)).length;
  const derived = clipConfig(token, shapeOf(h, `${p}positional_embedding`, 'position embedding'), layers, shapeOf(h, `${p}transformer.resblocks.0.mlp.c_fc.weight`, 'MLP width'));
  if (options.projection) {
    derived.projection_dim = shapeOf(h, `${p}text_projection`, 'text projection')[1];
    derived.architectures = ['CLIPTextModelWithProjection'];
  } else {
    derived.architectures = ['CLIPTextModel'];
  }
  return { derived, tensors, ignored };
}
