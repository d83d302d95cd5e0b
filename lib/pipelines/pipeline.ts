// A text-to-image / image-to-image pipeline over the CPU engine: conditioning, the denoising loop
// (one compiled step graph per shape: input scaling, guidance batching, UNet and the fused
// scheduler step), decoding and 8-bit output. It follows the diffusers pipelines' arithmetic and
// their order of random draws, so a seed gives diffusers' image.
import { AbortError, ArgumentError, DisposedError } from '../errors';
import { type CompiledGraph, type GraphFallback, type Precision, withFallbackReports } from '../graph';
import { yieldToLoop } from '../graph/describe';
import type { ControlNetModel } from '../models/controlnet/controlnet';
import type { UNet2DConditionModel } from '../models/unet/unet';
import type { AutoencoderKL } from '../models/vae/autoencoder_kl';
import type { AutoencoderTiny } from '../models/vae/autoencoder_tiny';
import type { ConsistencyDecoderVAE } from '../models/vae/consistency_decoder';
import { type NativeTensor, addon, callNative } from '../native';
import { DEFAULT_NORMAL_VARIANT, type NormalVariant, type Seed } from '../rng';
import { version } from '../version';
import type { GenerationParams } from './metadata';
import { type Plan, type SchedulerName, createScheduler, minSliceSteps } from '../schedulers';
import type { SchedulerConfig } from '../schedulers/common';
import { type LoraAdapterReport, type LoraComponent, type LoraReport, LoraSet, type LoraSpec, skippedWarning } from '../lora';
import type { Weights } from '../models/weights';
import { coeffVector } from '../schedulers/step';
import type { TextConditioner } from './conditioning';
import { type ControlOptions, type PreparedControl, checkControlNetFits, controlImage, controlImageSize, resolveControls, stepScales } from './control';
import { KIND_RULES, type KindRules, type PipelineKind } from './kinds';
import { type StepGraphKey, buildStepGraph } from './step_graph';
import { GeneratedImage, type InputImage, fitImage, imageToTensor, readPng } from './image';
import { type NoiseSource, TorchNoise } from './noise';

export type Decoder = { kind: 'kl'; model: AutoencoderKL } | { kind: 'tiny'; model: AutoencoderTiny } | { kind: 'consistency'; model: ConsistencyDecoderVAE };

export type { PipelineKind } from './kinds';

export interface PipelineDefaults {
  steps: number;
  guidanceScale: number;
  eta?: number;
  width: number;
  height: number;
  scheduler?: SchedulerName;
}

export interface PipelineParts {
  name: string;
  family: 'sd' | 'sdxl';
  kind: PipelineKind;
  conditioner: TextConditioner;
  unet: UNet2DConditionModel;
  schedulerConfig: SchedulerConfig;
  decoder: Decoder;
  /** used to encode img2img inputs when the decoder is the consistency decoder */
  encoder?: AutoencoderKL;
  defaults: PipelineDefaults;
  forceZerosForEmptyPrompt: boolean;
  /** ControlNets loaded with the pipeline, by the name they were asked for */
  controlNets?: { name: string; model: ControlNetModel }[];
  /** the CPU's GEMM arithmetic its networks were loaded with (default 'fp32') */
  precision?: Precision;
  /** LoadOptions.lowMemory: each stage's graphs (their working memory and weight forms) dropped after it */
  lowMemory?: boolean;
  /** loads a ControlNet folder or repo id on the UNet's device (lib/pipelines/load.ts) */
  loadControlNet?: (idOrDir: string, options: { variant?: string; config?: string }) => Promise<ControlNetModel>;
}

/** One generation's facts, fixed by prepare() (stage 1) and read by the later stages. */
interface Job {
  o: GenerateOptions;
  started: number;
  checkAbort: () => void;
  progress: (stage: ProgressEvent['stage'], step: number, steps: number) => void;
  prompts: string[];
  perPrompt: number;
  batch: number;
  guidance: number;
  cfg: boolean;
  kind: PipelineKind;
  rules: KindRules;
  width: number;
  height: number;
  h: number;
  w: number;
  latentShape: number[];
  /** img2img input [3, H, W] in [-1, 1] */
  image?: Float32Array;
  strength?: number;
  steps: number;
  plan: Plan;
  seed?: bigint;
  noise: NoiseSource;
  controls: PreparedControl[];
  warnings: string[];
  /** what ran on the CPU instead of the device (reported by the graphs as they run) */
  fallbacks: GraphFallback[];
}

/** The conditioning of a generation as native tensors (stage 2); dispose() frees them. */
interface Conditioned {
  rows: number;
  length: number;
  negatives?: string[];
  /** step-graph inputs that do not change between steps */
  fixed: Record<string, NativeTensor>;
  /** each control's batched image, in call order */
  controlConds: NativeTensor[];
  dispose(): void;
}

export interface ProgressEvent {
  stage: 'encode' | 'denoise' | 'decode';
  step: number;
  steps: number;
  elapsedMs: number;
  /**
   * The nodes of this generation's graphs so far that their device does not run (they run on the
   * CPU, e.g. an op without a CUDA kernel), grouped by graph, op and reason; absent when none.
   */
  fallbacks?: GraphFallback[];
}

export interface GenerateOptions {
  prompt: string | string[];
  negativePrompt?: string | string[];
  /** number of denoising steps (default: the model's recipe, e.g. 1 for Turbo, 4 for LCM) */
  steps?: number;
  /** classifier-free guidance scale; > 1 enables it (LCM models: the guidance embedding's w + 1) */
  guidanceScale?: number;
  /**
   * 0..2^64-1 (a number up to 2^53-1, a bigint or a decimal string): torch.Generator('cpu')
   * .manual_seed(seed) gives the same latents. Omitted: a random one in 0..2^32-1, recorded in
   * the image's params (and its PNG). Negative seeds are refused (no "-1 means random").
   */
  seed?: Seed | string;
  /** randn's float32 variant (see docs/RNG.md); default 'avx2' */
  rngVariant?: NormalVariant;
  width?: number;
  height?: number;
  /** images per prompt */
  batchSize?: number;
  scheduler?: SchedulerName;
  /** explicit timesteps (LCM / TCD, e.g. [800]) */
  timesteps?: number[];
  /** TCD gamma / DDIM eta */
  eta?: number;
  /** img2img input: a PNG path, PNG bytes, or pixels */
  image?: string | Uint8Array | InputImage;
  /** img2img strength in (0, 1] (default 0.5 when an image is given) */
  strength?: number;
  /**
   * img2img: an input image of another size than the output is resized to it as diffusers does
   * (PIL's Lanczos, bit for bit); false refuses it instead. Without width / height the output is
   * the image's size rounded down to multiples of 8. Float `pixels` images are never resized.
   */
  resizeImage?: boolean;
  /** initial unit-normal latents [B, 4, h, w] (replaces the seeded draw) */
  latents?: Float32Array;
  /** SDXL micro-conditioning (default: the output size, no crop) */
  originalSize?: [number, number];
  cropsCoordsTopLeft?: [number, number];
  targetSize?: [number, number];
  /**
   * SDXL micro-conditioning of the negative rows under classifier-free guidance. As in diffusers,
   * it applies only when both negativeOriginalSize and negativeTargetSize are given (crop default
   * (0, 0)); otherwise the negatives use the positive time ids.
   */
  negativeOriginalSize?: [number, number];
  negativeCropsCoordsTopLeft?: [number, number];
  negativeTargetSize?: [number, number];
  /** also return the final latents with each image */
  returnLatents?: boolean;
  onProgress?: (e: ProgressEvent) => void;
  /** called with each warning of the generation (they are also on every image's `warnings`) */
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
  /** where random draws come from (tests); default a torch generator seeded with `seed` */
  noise?: NoiseSource;
  /**
   * receives intermediate tensors by diffusers' names (tests, debugging), and the plan as
   * float64: 'plan.timesteps' (the timesteps run, at the scheduler's own precision) and
   * 'plan.init_noise_sigma'
   */
  trace?: (name: string, data: Float32Array | Float64Array) => void;
  /** overrides the scheduler config (tests: diffusers' from_config overrides) */
  schedulerConfig?: SchedulerConfig;
  /**
   * ControlNet: a control image for one of the pipeline's ControlNets (scale, guidance window,
   * guess mode), or several (MultiControlNet: their residuals summed). See docs/MODELS.md.
   */
  control?: ControlOptions | ControlOptions[];
}

export class Pipeline {
  private readonly stepGraphs = new Map<string, CompiledGraph>();
  private queue: Promise<unknown> = Promise.resolve();
  /** calls enqueued and not settled yet */
  private pending = 0;
  private disposed = false;
  private freed: Promise<void> | undefined;
  private loras: LoraSet | undefined;
  private readonly controlNetList: ControlNetModel[] = [];
  private readonly controlNetNameList: string[] = [];

  constructor(private readonly parts: PipelineParts) {
    for (const c of parts.controlNets ?? []) this.addControlNet(c.model, c.name);
  }

  /** The ControlNets this pipeline has, in load order (what ControlOptions.index counts). */
  get controlNets(): readonly ControlNetModel[] {
    return this.controlNetList;
  }

  /** The names (folders / repo ids) the ControlNets were loaded by, in the same order. */
  get controlNetNames(): readonly string[] {
    return [...this.controlNetNameList];
  }

  private addControlNet(model: ControlNetModel, name: string): void {
    checkControlNetFits(model, this.parts.unet, name);
    this.controlNetList.push(model);
    this.controlNetNameList.push(name);
  }

  /**
   * Loads a ControlNet (a diffusers folder, a Hugging Face repo id such as
   * lllyasviel/control_v11p_sd15_scribble, or an original-layout control_*.safetensors file, with
   * `config` a diffusers ControlNet folder for what its weights cannot tell) for this pipeline; a ControlNet made for another model
   * is a ConfigError. Returns it (ControlOptions.model), and it gets the next index.
   */
  loadControlNet(idOrDir: string, options: { variant?: string; config?: string } = {}): Promise<ControlNetModel> {
    return this.enqueue('loading a ControlNet', async () => {
      const load = this.parts.loadControlNet;
      if (!load) throw new ArgumentError('this pipeline cannot load ControlNets');
      const model = await load(idOrDir, options);
      try {
        this.addControlNet(model, idOrDir);
      } catch (e) {
        model.dispose();
        throw e;
      }
      return model;
    });
  }

  /**
   * Runs `fn` in the pipeline's queue (after the calls before it). After dispose() the call is
   * refused, and a call still waiting in the queue when dispose() came is refused when its turn
   * comes: both with a DisposedError naming `what`.
   */
  private enqueue<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
    if (this.disposed) return Promise.reject(new DisposedError(`${what}: the pipeline was disposed`));
    this.pending++;
    const run = this.queue.then(() => {
      if (this.disposed) throw new DisposedError(`${what}: the pipeline was disposed before this call started`);
      return fn();
    });
    const settled = run.then(
      () => void this.pending--,
      () => void this.pending--,
    );
    this.queue = settled;
    return run;
  }

  private loraSet(): LoraSet {
    if (!this.loras) {
      const comps: Partial<Record<LoraComponent, Weights>> = { unet: this.parts.unet.weights };
      for (const [name, enc] of Object.entries(this.parts.conditioner.encoders())) comps[name as LoraComponent] = enc.weights;
      const lpb = this.parts.unet.config.layersPerBlock;
      this.loras = new LoraSet(comps, lpb.every((x) => x === lpb[0]) ? lpb[0] : undefined);
    }
    return this.loras;
  }

  private recompile(changed: LoraComponent[]): void {
    if (changed.includes('unet')) {
      this.parts.unet.resetGraphs();
      for (const g of this.stepGraphs.values()) g.dispose();
      this.stepGraphs.clear();
    }
    const encs = this.parts.conditioner.encoders();
    for (const c of changed) if (c !== 'unet') encs[c]?.resetGraphs();
  }

  /**
   * Loads LoRA adapters and fuses them (with any already loaded) into the UNet and text encoders.
   * Key styles: kohya (lora_unet_*, lora_te*_*), diffusers, PEFT, the old attention-processor
   * format. Keys that do not map onto the model are one warning per adapter once the fusion
   * worked (`onWarning`, else a process warning ONESTEP_LORA_SKIPPED; ONESTEP_DEBUG=1 lists the
   * keys), an error with `strict`.
   */
  async loadLoras(specs: LoraSpec[], options: { strict?: boolean; onWarning?: (message: string) => void } = {}): Promise<LoraReport> {
    let added: LoraAdapterReport[] = [];
    const report = await this.changeLoras((set) => {
      added = set.add(specs, { strict: options.strict });
      return () => set.remove(added.map((a) => a.name));
    });
    for (const a of added) {
      const w = skippedWarning(a);
      if (!w) continue;
      if (options.onWarning) options.onWarning(w);
      else process.emitWarning(w, { code: 'ONESTEP_LORA_SKIPPED' });
    }
    return report;
  }

  /** Changes adapter scales and re-fuses the weights (from the checkpoint, never by subtraction). */
  setLoraScales(scales: Record<string, number>): Promise<LoraReport> {
    return this.changeLoras((set) => {
      const before = set.scales();
      set.setScales(scales);
      return () => set.setScales(before);
    });
  }

  /** Removes adapters (all when no names are given): the weights return to the checkpoint's own, bit for bit. */
  unloadLoras(names?: string[]): Promise<LoraReport> {
    return this.changeLoras((set) => {
      set.remove(names);
      return () => undefined;
    });
  }

  /** In the queue: changes the adapters, re-fuses, and rebuilds graphs; a failed fusion undoes the change and keeps the weights. */
  private changeLoras(change: (set: LoraSet) => () => void): Promise<LoraReport> {
    return this.enqueue('changing LoRA adapters', () => {
      const set = this.loraSet();
      const undo = change(set);
      try {
        const { report, changed } = set.apply();
        this.recompile(changed);
        return report;
      } catch (e) {
        undo();
        // weights are re-fused in place, one by one: a failure part way (out of GPU memory) is
        // undone by fusing the previous adapters and scales again
        if (set.interrupted) {
          try {
            this.recompile(set.apply().changed);
          } catch {
            this.recompile(['unet', ...(Object.keys(this.parts.conditioner.encoders()) as LoraComponent[])]);
          }
        }
        throw e;
      }
    });
  }

  /** The LoRA adapters loaded now. */
  get loraNames(): string[] {
    return this.loras?.names ?? [];
  }

  /** A fused weight (tests, debugging). */
  fusedWeight(component: LoraComponent, key: string): NativeTensor | undefined {
    return this.loras?.fusedWeight(component, key);
  }

  get name(): string {
    return this.parts.name;
  }

  get family(): 'sd' | 'sdxl' {
    return this.parts.family;
  }

  get kind(): PipelineKind {
    return this.parts.kind;
  }

  /** The CPU's GEMM arithmetic (LoadOptions.precision). */
  get precision(): Precision {
    return this.parts.precision ?? 'fp32';
  }

  get defaults(): PipelineDefaults {
    return { ...this.parts.defaults };
  }

  /** Generates images. Calls on one pipeline run one after another (a queue). */
  generate(options: GenerateOptions): Promise<GeneratedImage[]> {
    return this.enqueue('generate', () => this.run(options));
  }

  private async stepGraph(key: StepGraphKey): Promise<CompiledGraph> {
    const id = JSON.stringify(key);
    let graph = this.stepGraphs.get(id);
    if (!graph) {
      // lowMemory: one step graph at a time (a ControlNet's start / end window changes the key mid-loop)
      if (this.parts.lowMemory) {
        for (const g of this.stepGraphs.values()) g.dispose();
        this.stepGraphs.clear();
      }
      graph = await buildStepGraph(this.parts.unet, this.controlNetList, key);
      this.stepGraphs.set(id, graph);
    }
    return graph;
  }

  /**
   * A generation in stages: prepare (every option checked, sizes, the plan, the noise source)
   * -> condition (text, added conditioning, control images) -> the first latents -> the denoising
   * loop -> decode. The kind's differences come from KIND_RULES, nowhere else.
   */
  private async run(o: GenerateOptions): Promise<GeneratedImage[]> {
    const job = this.prepare(o);
    await yieldToLoop(); // the stages' own descriptions yield too: a generation never holds the loop long
    job.checkAbort();
    const reported = new Set<readonly GraphFallback[]>();
    // each graph with nodes its device does not run says so once per generation: a warning per op
    const onFallback = (list: readonly GraphFallback[]) => {
      if (reported.has(list)) return;
      reported.add(list);
      for (const f of list) {
        job.fallbacks.push({ ...f });
        const w = `${f.graph}: ${f.nodes} ${f.op} node${f.nodes === 1 ? '' : 's'} ran on the CPU (${f.reason})`;
        job.warnings.push(w);
        o.onWarning?.(w);
      }
    };
    return withFallbackReports(onFallback, async () => {
      let cond: Conditioned | undefined;
      try {
        cond = await this.condition(job);
        this.releaseAfter('text');
        const latents = await this.startLatents(job, cond);
        this.releaseAfter('vae');
        const final = await this.denoise(job, cond, latents);
        this.releaseAfter('unet');
        return await this.finish(job, cond, final);
      } finally {
        try {
          cond?.dispose();
        } finally {
          this.releaseAfter('all');
        }
      }
    });
  }

  /**
   * lowMemory: drops the graphs of the stage just done (their arenas, and the weight forms they
   * alone held: prepacked panels, relaid-out and Winograd kernels), so that one stage's memory
   * is resident at a time; the next generation compiles them again (a cold run's extra time).
   */
  private releaseAfter(stage: 'text' | 'vae' | 'unet' | 'all'): void {
    if (!this.parts.lowMemory) return;
    const p = this.parts;
    if (stage === 'text' || stage === 'all') for (const e of Object.values(p.conditioner.encoders())) e.resetGraphs();
    if (stage === 'vae' || stage === 'all') {
      p.decoder.model.resetGraphs();
      p.encoder?.resetGraphs();
    }
    if (stage === 'unet' || stage === 'all') {
      for (const g of this.stepGraphs.values()) g.dispose();
      this.stepGraphs.clear();
      p.unet.resetGraphs();
      for (const c of this.controlNetList) c.resetGraphs();
    }
  }

  /** Stage 1: the options checked (before any work), the output size, the plan and the noise. */
  private prepare(o: GenerateOptions): Job {
    const started = Date.now();
    const p = this.parts;
    const d = p.defaults;
    // between stages and steps: the caller's signal, or dispose() called meanwhile (even from onProgress)
    const checkAbort = () => {
      if (this.disposed) throw new AbortError('generation aborted: the pipeline was disposed', { cause: new DisposedError('the pipeline was disposed during this generation') });
      if (o.signal?.aborted) throw new AbortError('generation aborted', { cause: o.signal.reason });
    };
    const prompts = typeof o.prompt === 'string' ? [o.prompt] : o.prompt;
    if (!Array.isArray(prompts) || prompts.length === 0 || prompts.some((x) => typeof x !== 'string')) throw new ArgumentError('prompt must be a string or a non-empty array of strings');
    const perPrompt = o.batchSize ?? 1;
    if (!Number.isInteger(perPrompt) || perPrompt < 1 || perPrompt > 64) throw new ArgumentError(`batchSize must be an integer in 1..64, got ${o.batchSize}`);
    const guidance = o.guidanceScale ?? d.guidanceScale;
    if (!Number.isFinite(guidance) || guidance < 0 || guidance > 100) throw new ArgumentError(`guidanceScale must be in [0, 100], got ${o.guidanceScale}`);
    for (const k of ['originalSize', 'cropsCoordsTopLeft', 'targetSize', 'negativeOriginalSize', 'negativeCropsCoordsTopLeft', 'negativeTargetSize'] as const) {
      const v = o[k];
      if (v !== undefined && !(Array.isArray(v) && v.length === 2 && v.every((x) => Number.isFinite(x) && x >= 0))) throw new ArgumentError(`${k} must be two non-negative numbers [height, width] (or [top, left]), got ${JSON.stringify(v)}`);
    }
    const controls = resolveControls(o.control, this.controlNetList);
    // the output size: asked for, else the input image's, else the (first) control image's, each
    // rounded down to multiples of 8 as diffusers' image processors do, else the model's
    let width = o.width;
    let height = o.height;
    const img = o.image === undefined ? undefined : typeof o.image === 'string' || o.image instanceof Uint8Array ? readPng(o.image) : o.image;
    const from = img ?? (controls.length ? controlImageSize((Array.isArray(o.control) ? o.control : [o.control as ControlOptions])[0].image) : undefined);
    if (from) {
      width = width ?? from.width - (from.width % 8);
      height = height ?? from.height - (from.height % 8);
    }
    width = width ?? d.width;
    height = height ?? d.height;
    // any multiple of 8, as diffusers (the UNet follows odd latent sizes with its skips' sizes)
    for (const [k, v] of [['width', width], ['height', height]] as const) {
      if (!Number.isInteger(v) || v < 8 || v > 4096 || v % 8) throw new ArgumentError(`${k} must be a multiple of 8 between 8 and 4096, got ${v}`);
    }
    const image = img ? imageToTensor(fitImage(img, width, height, o.resizeImage !== false)) : undefined;
    const controlImages = (Array.isArray(o.control) ? o.control : o.control ? [o.control] : []).map((c) => controlImage(c.image, width as number, height as number));

    const kind: PipelineKind = o.scheduler === 'flow' ? 'flow' : p.kind;
    const rules = KIND_RULES[kind];
    const scheduler = createScheduler(o.schedulerConfig ?? p.schedulerConfig, rules.scheduler ?? o.scheduler ?? d.scheduler);
    const strength = image ? (o.strength ?? 0.5) : undefined;
    if (!image && o.strength !== undefined) throw new ArgumentError('strength needs an image (img2img)');
    // img2img without a step count: the recipe's, or the fewest that leave a step to run (Turbo
    // img2img at strength 0.5 runs 2 steps, 1 of them, as diffusers' docs do)
    const steps = o.steps ?? (strength !== undefined && rules.strengthMode === 'slice' && o.timesteps === undefined ? minSliceSteps(d.steps, strength) : d.steps);
    const plan: Plan = scheduler.plan({ steps, timesteps: o.timesteps, eta: o.eta ?? d.eta, strength, strengthMode: rules.strengthMode });
    const cfg = rules.cfg(guidance, p.unet);
    const seed = o.noise ? undefined : o.seed === undefined ? BigInt(randomSeed()) : generationSeed(o.seed);
    const noise: NoiseSource = o.noise ?? new TorchNoise(seed as bigint, o.rngVariant);
    if (o.trace) {
      o.trace('plan.timesteps', Float64Array.from(plan.timesteps));
      o.trace('plan.init_noise_sigma', Float64Array.of(plan.initNoiseSigma));
    }
    const h = height / 8;
    const w = width / 8;
    const batch = prompts.length * perPrompt;
    const job: Job = {
      o,
      started,
      checkAbort,
      progress: (stage, step, n) =>
        o.onProgress?.({ stage, step, steps: n, elapsedMs: Date.now() - started, ...(job.fallbacks.length ? { fallbacks: job.fallbacks.map((f) => ({ ...f })) } : {}) }),
      prompts,
      perPrompt,
      batch,
      guidance,
      cfg,
      kind,
      rules,
      width,
      height,
      h,
      w,
      latentShape: [batch, this.parts.unet.config.inChannels, h, w],
      image,
      strength,
      steps,
      plan,
      seed,
      noise,
      controls: controls.map((c, i) => ({ ...c, image: controlImages[i] })),
      warnings: [],
      fallbacks: [],
    };
    return job;
  }

  /** Stage 2: text conditioning, the added conditioning (SDXL time ids, LCM guidance) and the control images, as native tensors. */
  private async condition(job: Job): Promise<Conditioned> {
    const { o, prompts, perPrompt, cfg, batch } = job;
    const p = this.parts;
    const trace = o.trace;
    job.progress('encode', 0, 1);
    let negatives: string[] | undefined;
    let zeroNegatives = false;
    if (cfg) {
      const neg = o.negativePrompt;
      if (neg === undefined) {
        negatives = prompts.map(() => '');
        zeroNegatives = p.forceZerosForEmptyPrompt;
      } else {
        negatives = typeof neg === 'string' ? prompts.map(() => neg) : neg;
        if (negatives.length !== prompts.length) throw new ArgumentError(`${negatives.length} negative prompts for ${prompts.length} prompts`);
      }
    }
    const text = await p.conditioner.encode(prompts, negatives, perPrompt, zeroNegatives);
    // diffusers cuts prompts to the text encoder's window too, with a warning: so do we, loudly
    for (const t of text.truncated) {
      const w = `the ${t.role}${prompts.length > 1 ? ` #${t.index + 1}` : ''} has ${t.tokens} tokens; the text encoder reads ${t.kept}, so the last ${t.tokens - t.kept} were dropped (as in diffusers)`;
      job.warnings.push(w);
      o.onWarning?.(w);
    }
    job.checkAbort();
    if (trace) {
      for (const [k, v] of Object.entries(text.ids)) trace(k, Float32Array.from(v.flat()));
      trace('prompt_embeds', text.context);
      if (text.textEmbeds) trace('add_text_embeds', text.textEmbeds);
    }
    const rows = text.rows;
    const a = addon();
    const owned: NativeTensor[] = [];
    const tensor = (shape: number[], v: Float32Array) => {
      const t = callNative(() => a.tensorFromFloat32('F32', shape, v));
      owned.push(t);
      return t;
    };
    const cond: Conditioned = {
      rows,
      length: text.length,
      negatives,
      fixed: {},
      controlConds: [],
      dispose: () => {
        for (const t of owned) t.dispose();
      },
    };
    try {
      cond.fixed.context = tensor([rows, text.length, text.width], text.context);
      if (text.textEmbeds) {
        cond.fixed.text_embeds = tensor([rows, text.textEmbeds.length / rows], text.textEmbeds);
        const { height, width } = job;
        const pos = [...(o.originalSize ?? [height, width]), ...(o.cropsCoordsTopLeft ?? [0, 0]), ...(o.targetSize ?? [height, width])];
        // diffusers: negative time ids only when both negative sizes are given
        const neg = o.negativeOriginalSize && o.negativeTargetSize ? [...o.negativeOriginalSize, ...(o.negativeCropsCoordsTopLeft ?? [0, 0]), ...o.negativeTargetSize] : pos;
        const ids = new Float32Array(rows * 6);
        for (let r = 0; r < rows; r++) ids.set(cfg && r < rows / 2 ? neg : pos, r * 6);
        cond.fixed.time_ids = tensor([rows, 6], ids);
        if (trace) trace('add_time_ids', ids);
      }
      if (p.unet.config.timeCondProjDim) cond.fixed.guidance_w = tensor([rows], new Float32Array(rows).fill(Math.fround(job.guidance - 1)));
      // control images batched as diffusers' prepare_image: repeated to the batch, [uncond; cond] under guidance unless guess mode
      const guess = job.controls.some((c) => c.guessMode);
      const copies = cfg && !guess ? 2 * batch : batch;
      job.controls.forEach((c, k) => {
        const one = c.image;
        const all = new Float32Array(copies * one.length);
        for (let b = 0; b < copies; b++) all.set(one, b * one.length);
        cond.controlConds.push(tensor([copies, 3, job.height, job.width], all));
        if (trace && k === 0) trace('controlnet_cond', all);
      });
      return cond;
    } catch (e) {
      cond.dispose();
      throw e;
    }
  }

  /** Stage 3: the first latents: seeded noise x init_noise_sigma, or img2img's noised image latents. */
  private async startLatents(job: Job, cond: Conditioned): Promise<Float32Array> {
    const { o, plan, noise, latentShape, batch } = job;
    void cond;
    const latentSize = latentShape.reduce((x, y) => x * y, 1);
    let latents: Float32Array;
    if (job.image) {
      const { height, width, image } = job;
      const imgs = new Float32Array(batch * 3 * height * width);
      for (let b = 0; b < batch; b++) imgs.set(image, b * image.length);
      const x0 = await this.encodeImage(imgs, batch, height, width, noise);
      job.checkAbort();
      const n = noise.randn(latentShape, 'img2img_noise');
      const an = plan.addNoise as { sample: number; noise: number };
      latents = x0.map((v, i) => Math.fround(Math.fround(an.sample * v) + Math.fround(an.noise * n[i])));
    } else {
      const init = o.latents ?? noise.randn(latentShape, 'latents');
      if (init.length !== latentSize) throw new ArgumentError(`latents must hold ${latentSize} values ([${latentShape}]), got ${init.length}`);
      if (o.trace) o.trace('latents_init', init);
      latents = plan.initNoiseSigma === 1 ? Float32Array.from(init) : init.map((v) => Math.fround(v * plan.initNoiseSigma));
    }
    if (o.trace) o.trace('latents_start', latents);
    return latents;
  }

  /** Stage 4: the denoising loop, one step graph run per step; returns the latents to decode. */
  private async denoise(job: Job, cond: Conditioned, start: Float32Array): Promise<Float32Array> {
    const { o, plan, noise, latentShape, cfg, guidance, batch, rules } = job;
    const trace = o.trace;
    const { rows } = cond;
    const latentSize = latentShape.reduce((x, y) => x * y, 1);
    const zeros = new Float32Array(latentSize);
    const n = plan.steps.length;
    const guess = job.controls.some((c) => c.guessMode);
    let latents = start;
    let last: Float32Array = latents;
    for (let i = 0; i < n; i++) {
      job.checkAbort();
      job.progress('denoise', i, n);
      const s = plan.steps[i];
      // the ControlNets acting at this step: outside its window one is left out of the graph
      // (diffusers runs it at scale 0: exact zeros); traced runs keep it, to record those zeros
      const at = job.controls.map((c, k) => ({ c, k, ...stepScales(c, i, n) })).filter((x) => trace || x.keep > 0);
      const graph = await this.stepGraph({ rows, batch, h: job.h, w: job.w, cfg, trace: !!trace, length: cond.length, controls: at.map((x) => x.c.slot), guess });
      const feed: Record<string, Float32Array | NativeTensor> = {
        latents,
        in_scale: Float32Array.of(s.inputScale),
        timestep: new Float32Array(rows).fill(s.t),
        coeffs: coeffVector(s.coeffs, cfg ? guidance : undefined),
        noise: s.drawNoise ? noise.randn(latentShape, `step${i}_noise`) : zeros,
        ...cond.fixed,
      };
      at.forEach((x, j) => {
        feed[`control${j}_cond`] = cond.controlConds[x.k];
        feed[`control${j}_scales`] = x.factors;
      });
      const r = await graph.run(feed);
      const prev = r.prev.toFloat32();
      const den = r.denoised.toFloat32();
      if (trace) {
        trace(`step${i}_unet_sample`, r.unet_sample.toFloat32());
        trace(`step${i}_timestep`, Float32Array.of(s.t));
        trace(`step${i}_unet_timestep`, new Float32Array(rules.timestepPerRow ? rows : 1).fill(s.t));
        const out = r.unet_out.toFloat32();
        trace(`step${i}_unet_out`, out);
        trace(`step${i}_model_output`, cfg ? out.subarray(0, latentSize).map((u, k) => u + guidance * (out[latentSize + k] - u)) : out);
        trace(`step${i}_latents`, prev);
        if (plan.denoisedName && plan.denoisedName !== 'pred_original_sample') trace(`step${i}_${plan.denoisedName}`, den);
        if (r.timestep_cond) trace('timestep_cond', r.timestep_cond.toFloat32());
        if (at.length) trace(`step${i}_controlnet_sample`, r.controlnet_sample.toFloat32());
        at.forEach((x, j) => {
          const tag = job.controls.length === 1 ? 'controlnet' : `controlnet${x.k}`;
          trace(`step${i}_${tag}_scale`, Float32Array.of(x.scale));
          for (let m = 0; r[`control${j}_down_${m}`]; m++) trace(`step${i}_${tag}_down_${m}`, r[`control${j}_down_${m}`].toFloat32());
          trace(`step${i}_${tag}_mid`, r[`control${j}_mid`].toFloat32());
        });
      }
      for (const t of Object.values(r)) if (t && typeof (t as NativeTensor).dispose === 'function') (t as NativeTensor).dispose();
      latents = prev;
      last = rules.decodesDenoised(plan) ? den : prev;
    }
    job.progress('denoise', n, n);
    // the LCM pipelines decode the last step's `denoised` (equal to prev on the last step)
    const final = n ? last : latents;
    if (trace) trace('latents_final', final);
    job.checkAbort();
    return final;
  }

  /** Stage 5: decode, 8-bit RGB, and what made each image. */
  private async finish(job: Job, cond: Conditioned, final: Float32Array): Promise<GeneratedImage[]> {
    const { o, batch, height, width, h, w, perPrompt, prompts, noise } = job;
    const p = this.parts;
    const trace = o.trace;
    job.progress('decode', 0, 1);
    const decoded = await this.decode(final, batch, h, w, noise, trace);
    const C = job.latentShape[1];
    const images: GeneratedImage[] = [];
    const plane = 3 * height * width;
    const unitAll = trace ? new Float32Array(batch * plane) : undefined;
    const loras = Object.entries(this.loras?.scales() ?? {}).map(([name, scale]) => ({ name, scale }));
    try {
      for (let b = 0; b < batch; b++) {
        // diffusers' postprocess (clamp(x / 2 + 0.5, 0, 1), round(x * 255)) natively: a 512x512 image is 13 ms of JS
        const rgb = callNative(() => decoded.toRgb8(b, unitAll?.subarray(b * plane, (b + 1) * plane)));
        const lat = o.returnLatents ? final.slice(b * C * h * w, (b + 1) * C * h * w) : undefined;
        // the negative prompt only where it was used (under classifier-free guidance)
        const neg = cond.negatives?.[Math.floor(b / perPrompt)];
        const params: GenerationParams = {
          prompt: prompts[Math.floor(b / perPrompt)],
          negativePrompt: neg || undefined,
          steps: job.steps,
          sampler: job.plan.scheduler,
          guidanceScale: job.guidance,
          seed: job.seed?.toString(),
          rngVariant: o.rngVariant ?? DEFAULT_NORMAL_VARIANT,
          width,
          height,
          model: p.name,
          loras,
          strength: job.strength,
          eta: o.eta ?? p.defaults.eta,
          timesteps: o.timesteps,
          controlnets: job.controls.length ? job.controls.map((c) => ({ name: this.controlNetNameList[c.slot], scale: c.scale, start: c.start, end: c.end, guessMode: c.guessMode })) : undefined,
          batchSize: batch,
          batchIndex: b,
          precision: this.precision === 'fp32' ? undefined : this.precision,
          version: `onestep ${version}`,
        };
        images.push(new GeneratedImage(width, height, rgb, lat, params, job.warnings));
      }
    } finally {
      decoded.dispose();
    }
    if (trace && unitAll) trace('image', unitAll);
    job.progress('decode', 1, 1);
    return images;
  }

  /** image [B, 3, H, W] in [-1, 1] -> the initial latents x0 (scaled, as the pipelines do). */
  private async encodeImage(imgs: Float32Array, batch: number, height: number, width: number, noise: NoiseSource): Promise<Float32Array> {
    const dec = this.parts.decoder;
    const shape = { batch, height, width };
    if (dec.kind === 'tiny') {
      const t = await dec.model.encode(imgs, shape);
      const v = t.toFloat32();
      t.dispose();
      return v.map((x) => x * dec.model.config.scalingFactor);
    }
    const kl = dec.kind === 'kl' ? dec.model : this.parts.encoder;
    if (!kl) throw new ArgumentError('img2img needs the VAE encoder, which this decoder lacks');
    const f = kl.downscale;
    const sampleNoise = noise.randn([batch, kl.config.latentChannels, height / f, width / f], 'vae_sample_noise');
    const dist = await kl.encode(imgs, shape, sampleNoise);
    const sample = (dist.sample as NativeTensor).toFloat32();
    for (const t of [dist.mean, dist.logvar, dist.std, dist.sample]) t?.dispose();
    const sf = kl.config.scalingFactor;
    const shift = kl.config.shiftFactor ?? 0;
    return sample.map((x) => Math.fround((x - shift) * sf));
  }

  private async decode(latents: Float32Array, batch: number, h: number, w: number, noise: NoiseSource, trace?: (n: string, d: Float32Array) => void): Promise<NativeTensor> {
    const dec = this.parts.decoder;
    const shape = { batch, height: h, width: w };
    let out: NativeTensor;
    if (dec.kind === 'tiny') {
      const sf = dec.model.config.scalingFactor;
      const z = sf === 1 ? latents : latents.map((v) => v / sf);
      if (trace) trace('vae_decode_input', z);
      out = await dec.model.decode(z, shape);
    } else if (dec.kind === 'kl') {
      const sf = dec.model.config.scalingFactor;
      const shift = dec.model.config.shiftFactor ?? 0;
      const z = latents.map((v) => Math.fround(v / sf) + shift);
      if (trace) trace('vae_decode_input', z);
      out = await dec.model.decode(z, shape);
    } else {
      const sf = dec.model.config.scalingFactor;
      const z = latents.map((v) => v / sf);
      if (trace) trace('vae_decode_input', z);
      const f = dec.model.config.downscale;
      const n0 = noise.randn([batch, 3, h * f, w * f], 'decoder_noise0');
      const n1 = noise.randn([batch, 3, h * f, w * f], 'decoder_noise1');
      out = await dec.model.decode(z, shape, n0, n1);
    }
    return out;
  }

  /**
   * Frees the models' memory, once; later calls (generate, loadLoras, ...) reject with a
   * DisposedError. A generation running now is aborted at its next step boundary (it rejects with
   * an AbortError whose cause is a DisposedError; the native work of the step in flight finishes
   * first), calls still queued reject with a DisposedError, and the memory is freed when the
   * running call has returned: at once when the pipeline is idle. The promise resolves then.
   */
  dispose(): Promise<void> {
    if (this.freed) return this.freed;
    this.disposed = true;
    if (this.pending === 0) {
      this.free();
      this.freed = Promise.resolve();
    } else {
      this.freed = this.queue.then(() => this.free());
    }
    return this.freed;
  }

  private free(): void {
    this.loras?.dispose();
    for (const g of this.stepGraphs.values()) g.dispose();
    this.stepGraphs.clear();
    this.parts.conditioner.dispose();
    this.parts.unet.dispose();
    this.parts.decoder.model.dispose();
    this.parts.encoder?.dispose();
    for (const c of this.controlNetList) c.dispose();
  }
}

/** A generation's seed: an integer 0..2^64-1 (number, bigint or decimal string), as a bigint. */
export function generationSeed(seed: unknown): bigint {
  const show = typeof seed === 'bigint' ? seed.toString() : typeof seed === 'string' ? (/^-?\d{1,40}$/.test(seed) ? seed : JSON.stringify(seed.slice(0, 40))) : String(seed);
  let s: bigint | undefined;
  if (typeof seed === 'number' && Number.isSafeInteger(seed)) s = BigInt(seed);
  else if (typeof seed === 'bigint') s = seed;
  else if (typeof seed === 'string' && /^\d{1,20}$/.test(seed)) s = BigInt(seed);
  if (s === undefined || s < 0n || s >= 2n ** 64n) throw new ArgumentError(`seed must be an integer in 0..2^64-1 (omit it for a random one), got ${show}`);
  return s;
}

function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}
