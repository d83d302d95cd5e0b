// unet goldens: UNet2DConditionModel output for given sample, timestep and conditioning.
import { loadUNet } from '../models';
import type { CaseRunner } from './network';

export const unetCase: CaseRunner = async (golden, meta, modelDir, cmp, fixtures) => {
  const unet = loadUNet(modelDir, fixtures, meta.component);
  try {
    const [B, , H, W] = golden.info('sample').shape;
    const ctx = golden.info('encoder_hidden_states').shape;
    const t = golden.float32('timestep');
    const timestep = t.length === B ? t : new Float32Array(B).fill(t[0]); // a scalar timestep is broadcast
    const get = (k: string) => (golden.has(k) ? golden.float32(k) : undefined);
    const out = await unet.forward(
      {
        sample: golden.float32('sample'),
        timestep,
        encoderHiddenStates: golden.float32('encoder_hidden_states'),
        timestepCond: get('timestep_cond'),
        textEmbeds: get('text_embeds'),
        timeIds: get('time_ids'),
      },
      { batch: B, height: H, width: W, contextLength: ctx[1] },
    );
    cmp.add('out', out.toFloat32(), golden.float32('out'));
    out.dispose();
    if (unet.unusedWeights().length) throw new Error(`unused weights: ${unet.unusedWeights().slice(0, 5).join(', ')}`);
  } finally {
    unet.dispose();
  }
};
