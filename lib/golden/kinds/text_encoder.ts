// text_encoder goldens: CLIPTextModel(WithProjection) outputs for given input_ids.
import type { TextEncoderOutput } from '../../models/clip/text_encoder';
import { loadTextEncoder } from '../models';
import type { CaseRunner } from './network';

const names: [string, TextEncoderOutput][] = [
  ['last_hidden_state', 'last_hidden_state'],
  ['penultimate_hidden_state', 'penultimate'],
  ['penultimate_final_ln', 'penultimate_final_ln'],
  ['pooled', 'pooled'],
  ['text_embeds', 'text_embeds'],
];

export const textEncoderCase: CaseRunner = async (golden, meta, modelDir, cmp, fixtures) => {
  const model = loadTextEncoder(modelDir, fixtures, meta.component);
  try {
    const shape = golden.info('input_ids').shape;
    const flat = golden.float32('input_ids');
    const ids = Array.from({ length: shape[0] }, (_, b) => Array.from(flat.subarray(b * shape[1], (b + 1) * shape[1])));
    const wanted = names.filter(([key]) => golden.has(key));
    const out = await model.encode(ids, wanted.map(([, o]) => o));
    for (const [key, o] of wanted) {
      cmp.add(key, out[o].toFloat32(), golden.float32(key));
      out[o].dispose();
    }
  } finally {
    model.dispose();
  }
};
