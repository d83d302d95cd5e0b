// unet goldens: UNet2DConditionModel output for given sample, timestep and conditioning.
import { CaseFieldError, fieldNumbers } from '../fields';
import { loadUNet } from '../models';
import type { CaseRunner } from './network';

export const UNET_FIELDS = ['component', 'call', 'timestep_passed_as', 'timestep_values', 'latent_hw', 'down_factor'];

export const unetCase: CaseRunner = async (golden, meta, modelDir, cmp, fixtures) => {
  const unet = loadUNet(modelDir, fixtures, meta.component);
  try {
    const [B, , H, W] = golden.info('sample').shape;
    const ctx = golden.info('encoder_hidden_states').shape;
    const t = golden.float32('timestep');
    // what the case says it passed must be what the file holds
    if (meta.timestep_values !== undefined) {
      const want = fieldNumbers(meta, 'timestep_values', 'case field');
      if (want.length !== t.length || want.some((v, i) => Math.fround(v) !== t[i])) throw new CaseFieldError(`timestep_values [${want}] differ from the timestep tensor [${Array.from(t)}]`);
    }
    if (meta.latent_hw !== undefined) {
      const hw = fieldNumbers(meta, 'latent_hw', 'case field', 2);
      if (hw[0] !== H || hw[1] !== W) throw new CaseFieldError(`latent_hw [${hw}] differs from the sample's ${H}x${W}`);
    }
    if (meta.down_factor !== undefined && meta.down_factor !== 2 ** unet.downsamplings) {
      throw new CaseFieldError(`down_factor ${JSON.stringify(meta.down_factor)} differs from the UNet's ${2 ** unet.downsamplings}`);
    }
    if (meta.call !== undefined && typeof meta.call !== 'string') throw new CaseFieldError('a unet case describes its call as a string');
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
