// pipeline goldens: a whole generation with the reference's recorded random draws injected, every
// recorded intermediate (token ids, embeddings, each step's UNet input / output / latents, the
// decoder input, the image) compared with ours.
import * as path from 'path';
import { type GenerateOptions, RecordedNoise, loadPipeline } from '../../pipelines';
import type { SchedulerConfig } from '../../schedulers/common';
import { pipelineSource } from '../models';
import type { CaseRunner } from './network';

interface PipelineCase {
  call: Record<string, unknown>;
  pipeline: string;
  scheduler?: string;
  scheduler_config?: SchedulerConfig;
  vae_model?: string;
  style?: string;
}

export class NotYetError extends Error {}

export const pipelineCase: CaseRunner = async (golden, metaRaw, modelDir, cmp, ctx) => {
  const meta = metaRaw as unknown as PipelineCase;
  const vae = meta.vae_model ? path.join(ctx.root, 'models', meta.vae_model) : undefined;
  // a pipeline with a LoRA fused: the style names the file and the scale
  const lora = /(sd15_lora_\w+) fused at scale ([\d.]+)/.exec(meta.style ?? '');
  if (/lora/i.test(path.basename(golden.path)) && !lora) throw new NotYetError('cannot tell which LoRA this pipeline golden fuses');
  const loras = lora ? [{ path: path.join(ctx.root, 'lora', `${lora[1]}.safetensors`), scale: Number(lora[2]) }] : undefined;
  const src = pipelineSource(modelDir, ctx);
  const pipe = await loadPipeline(src.id, { ...src.options, vae, loras, strictLoras: true });
  try {
    const call = meta.call;
    const has = (k: string) => golden.has(k);
    const draws: { label: string; data: Float32Array }[] = [];
    if (has('vae_sample_noise')) draws.push({ label: 'vae_sample_noise', data: golden.float32('vae_sample_noise') });
    if (has('img2img_noise')) draws.push({ label: 'img2img_noise', data: golden.float32('img2img_noise') });
    for (let i = 0; has(`step${i}_latents`); i++) if (has(`step${i}_noise`)) draws.push({ label: `step${i}_noise`, data: golden.float32(`step${i}_noise`) });
    for (const k of ['decoder_noise0', 'decoder_noise1']) if (has(k)) draws.push({ label: k, data: golden.float32(k) });
    const noise = new RecordedNoise(draws);
    const traced = new Map<string, Float32Array>();
    const opts: GenerateOptions = {
      prompt: call.prompt as string | string[],
      negativePrompt: call.negative_prompt as string | string[] | undefined,
      guidanceScale: call.guidance_scale as number | undefined,
      steps: call.num_inference_steps as number | undefined,
      width: call.width as number | undefined,
      height: call.height as number | undefined,
      eta: call.eta as number | undefined,
      strength: call.strength as number | undefined,
      batchSize: call.num_images_per_prompt as number | undefined,
      timesteps: call.timesteps as number[] | undefined,
      latents: has('latents_init') ? golden.float32('latents_init') : undefined,
      schedulerConfig: meta.scheduler_config,
      scheduler: meta.pipeline === 'RectifiedFlowPipeline' ? 'flow' : undefined,
      noise,
      trace: (name, data) => traced.set(name, data),
    };
    if (has('image_in')) {
      const [, , H, W] = golden.info('image_in').shape;
      opts.image = { width: W, height: H, pixels: golden.float32('image_in') };
    }
    await pipe.generate(opts);
    if (noise.remaining) throw new Error(`${noise.remaining} recorded random draws were not used`);
    let compared = 0;
    for (const name of golden.names()) {
      const mine = traced.get(name);
      if (!mine) continue;
      cmp.add(name, mine, golden.float32(name));
      compared++;
    }
    for (const must of ['image', 'latents_final', 'latents_start']) if (!traced.has(must) && has(must)) throw new Error(`pipeline produced no ${must}`);
    if (compared < 5) throw new Error(`only ${compared} tensors compared`);
  } finally {
    pipe.dispose();
  }
};
