// Where a golden case's model comes from: its diffusers folder (models/<model>), or a single-file
// checkpoint standing in for it (`--single-file FILE`), with the folder as its config; on the
// device and precision the run asked for (`--device cuda`, `--precision bf16`).
import * as path from 'path';
import { CLIPTextModel } from '../models/clip/text_encoder';
import { UNet2DConditionModel } from '../models/unet/unet';
import { AutoencoderKL } from '../models/vae/autoencoder_kl';
import type { LoadOptions } from '../pipelines';
import { type ComponentName, openSingleFile } from '../single_file';
import type { ModelTarget } from '../models/weights';
import type { FixtureContext } from './types';

/** The single file standing in for a model folder, if one was given for it. */
export function singleFileFor(modelDir: string, ctx: FixtureContext): string | undefined {
  return ctx.singleFiles?.[path.basename(modelDir)];
}

function fromFile<T>(
  modelDir: string,
  ctx: FixtureContext,
  component: string,
  make: (config: Record<string, unknown>, source: never, label: string, target: ModelTarget) => T,
): T | undefined {
  const file = singleFileFor(modelDir, ctx);
  if (!file) return undefined;
  const sf = openSingleFile(file, { configDir: modelDir });
  const mine = sf.components[component as ComponentName];
  for (const [c, v] of Object.entries(sf.components)) if (c !== component) v?.source.close();
  if (!mine) throw new Error(`${file} has no ${component}`);
  return make(mine.config, mine.source as never, `${path.basename(file)} (${component})`, ctx);
}

export function loadUNet(modelDir: string, ctx: FixtureContext, component = 'unet'): UNet2DConditionModel {
  return fromFile(modelDir, ctx, component, UNet2DConditionModel.fromSource) ?? UNet2DConditionModel.fromPretrained(path.join(modelDir, component), ctx);
}

export function loadTextEncoder(modelDir: string, ctx: FixtureContext, component = 'text_encoder'): CLIPTextModel {
  return fromFile(modelDir, ctx, component, CLIPTextModel.fromSource) ?? CLIPTextModel.fromPretrained(path.join(modelDir, component), ctx);
}

export function loadVae(modelDir: string, ctx: FixtureContext, component = 'vae'): AutoencoderKL {
  return fromFile(modelDir, ctx, component, AutoencoderKL.fromSource) ?? AutoencoderKL.fromPretrained(path.join(modelDir, component), ctx);
}

/** What loadPipeline is given for a case's model. */
export function pipelineSource(modelDir: string, ctx: FixtureContext): { id: string; options: LoadOptions } {
  const file = singleFileFor(modelDir, ctx);
  return file ? { id: file, options: { config: modelDir, device: ctx.device, precision: ctx.precision } } : { id: modelDir, options: { device: ctx.device, precision: ctx.precision } };
}
