// npx onestep <command>: generate, serve, info, download, bench, golden.
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import { type ArgSpec, normalizeArgs, parseArgsOptions } from './cli_args';
import { ArgumentError, FileNotFoundError, OnestepError } from './errors';
import { PRECISIONS, type Precision } from './graph';
import { formatInfo, info } from './info';
import { SCHEDULER_NAMES, type SchedulerName } from './schedulers';
import { version } from './version';

const USAGE = `usage: onestep <command> [options]

commands:
  generate -m MODEL -p PROMPT [options]   generate images (see onestep generate --help)
  serve -m MODEL [options]   real-time page and HTTP / WebSocket APIs on 127.0.0.1 (see onestep serve --help)
  download MODEL [--variant fp16] [--revision REV]   fetch a Hugging Face repo into the cache
  info [--json]      version, backends compiled and usable, CUDA devices or why CUDA is unusable
  info IMAGE.png [--json]   the parameters an image was made with (its PNG text chunks) and the command that remakes it
  bench [options]    per-stage CPU latency on random-weight real-size models (scripts/bench.js)
  golden PATH...     run golden fixtures (same as npm run golden)
  version            print the version`;

const GENERATE_USAGE = `usage: onestep generate -m MODEL -p PROMPT [options]

  -m, --model MODEL        a diffusers folder, a single-file .safetensors checkpoint, or a Hugging Face repo id
  -p, --prompt TEXT        the prompt (repeat for several prompts)
  -n, --negative TEXT      negative prompt (used with guidance > 1)
  -o, --output FILE        output PNG (default out.png; several images: out-1.png, out-2.png, ...)
      --steps N            denoising steps (default: the model's recipe, e.g. 1 for Turbo)
      --cfg SCALE          guidance scale (> 1 enables classifier-free guidance)
      --seed N             seed (torch-compatible: diffusers gives the same latents)
  -W, --width N            width in pixels (a multiple of 8)
  -H, --height N           height in pixels
      --batch N            images per prompt
      --scheduler NAME     ${SCHEDULER_NAMES.join(' | ')}
      --timesteps LIST     explicit timesteps, e.g. 800 or 999,759,499,259 (LCM / TCD)
      --eta E              TCD gamma / DDIM eta
      --image FILE         img2img input PNG (resized to -W/-H as diffusers does; default its size, rounded down to 8)
      --no-resize          refuse an --image of another size than -W/-H instead of resizing it
      --strength S         img2img strength (default 0.5; without --steps, enough steps to run one)
      --taesd [ID]         decode with TAESD (the family's standard repo, or a folder / repo id)
      --vae PATH           another VAE folder (AutoencoderKL or ConsistencyDecoderVAE)
      --lora FILE[:SCALE]  fuse a LoRA (a .safetensors file or a hub repo id; scale default 1);
                           repeat for several (e.g. an LCM-LoRA and a style LoRA)
      --strict-lora        LoRA keys that match no module are an error (default: a warning)
      --controlnet DIR|REPO  a ControlNet to load (repeatable), e.g. lllyasviel/control_v11p_sd15_scribble
      --control FILE[:CONTROLNET][:SCALE]
                           a control image (PNG) for a ControlNet (the named one, else the first --controlnet),
                           scale default 1; repeat for several (MultiControlNet: their effects add up)
      --control-start F    the fraction of the steps the ControlNets start acting (default 0)
      --control-end F      ... and stop (default 1)
      --guess-mode         diffusers' guess mode (the ControlNets see only the conditional half under guidance)
      --variant NAME       weight variant to prefer (e.g. fp16)
      --config DIR|REPO    single files: the diffusers folder / repo with the model's configs and tokenizers
      --prediction TYPE    single files: epsilon | v_prediction (SD2 files default to v_prediction)
      --device DEV         auto | cpu | cuda
      --precision P        fp32 (default) | bf16: the CPU's GEMMs with bf16 operands (CPUs with
                           AVX512_BF16 or AMX-BF16; faster, the image within ~4e-3 of fp32's)
      --no-metadata        write no generation parameters into the PNG (default: a 'parameters' text chunk
                           as the web UIs write it, and an 'onestep' JSON chunk; onestep info IMAGE reads them)
  -v, --verbose            details with warnings (e.g. every LoRA key that did not apply; also ONESTEP_DEBUG=1)
  -q, --quiet              no progress output`;

class UsageError extends Error {}

function num(v: string | undefined, what: string, integer = false): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new UsageError(`--${what} must be ${integer ? 'an integer' : 'a number'}, got '${v}'`);
  return n;
}

function progressLine(stream: NodeJS.WriteStream, quiet: boolean) {
  let last = '';
  return {
    update(text: string) {
      if (quiet) return;
      if (stream.isTTY) {
        stream.write(`\r${text.padEnd(last.length)}`);
      } else if (text !== last) {
        stream.write(`${text}\n`);
      }
      last = text;
    },
    done() {
      if (!quiet && stream.isTTY && last) stream.write('\n');
    },
  };
}

function bar(fraction: number, width = 24): string {
  const n = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${'='.repeat(n)}${' '.repeat(width - n)}]`;
}

const GENERATE_ARGS = {
  model: { type: 'string', short: 'm' },
  prompt: { type: 'string', short: 'p', multiple: true },
  negative: { type: 'string', short: 'n' },
  output: { type: 'string', short: 'o' },
  steps: { type: 'string' },
  cfg: { type: 'string' },
  seed: { type: 'string' },
  width: { type: 'string', short: 'W' },
  height: { type: 'string', short: 'H' },
  batch: { type: 'string' },
  scheduler: { type: 'string' },
  timesteps: { type: 'string' },
  eta: { type: 'string' },
  image: { type: 'string' },
  strength: { type: 'string' },
  taesd: { type: 'string', optional: true },
  vae: { type: 'string' },
  lora: { type: 'string', multiple: true },
  'strict-lora': { type: 'boolean' },
  controlnet: { type: 'string', multiple: true },
  control: { type: 'string', multiple: true },
  'control-start': { type: 'string' },
  'control-end': { type: 'string' },
  'guess-mode': { type: 'boolean' },
  config: { type: 'string' },
  prediction: { type: 'string' },
  variant: { type: 'string' },
  device: { type: 'string' },
  precision: { type: 'string' },
  'no-metadata': { type: 'boolean' },
  'no-resize': { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} satisfies Record<string, ArgSpec>;

/** The output file can be written: its folder exists and is writable, it is not a folder (before any work). */
function checkOutput(out: string): void {
  const abs = path.resolve(out);
  if (out.endsWith('/') || out.endsWith(path.sep) || (fs.existsSync(abs) && fs.statSync(abs).isDirectory())) {
    throw new ArgumentError(`-o ${out} is a folder; give a file name, e.g. -o ${path.join(out, 'out.png')}`);
  }
  const dir = path.dirname(abs);
  if (!fs.existsSync(dir)) throw new FileNotFoundError(dir, 'output folder');
  if (!fs.statSync(dir).isDirectory()) throw new ArgumentError(`cannot write ${out}: ${dir} is not a folder`);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new ArgumentError(`cannot write ${out}: the folder ${dir} is not writable`);
  }
  if (fs.existsSync(abs)) {
    try {
      fs.accessSync(abs, fs.constants.W_OK);
    } catch {
      throw new ArgumentError(`cannot write ${out}: the file exists and is not writable`);
    }
  }
}

async function generate(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: normalizeArgs(argv, GENERATE_ARGS),
    options: parseArgsOptions(GENERATE_ARGS),
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    console.log(GENERATE_USAGE);
    return 0;
  }
  if (!values.model) throw new UsageError('--model (-m) is required');
  if (!values.prompt || values.prompt.length === 0) throw new UsageError('--prompt (-p) is required');
  if (values.scheduler && !(SCHEDULER_NAMES as string[]).includes(values.scheduler)) throw new UsageError(`--scheduler must be one of ${SCHEDULER_NAMES.join(', ')}`);
  if (values.device && !['auto', 'cpu', 'cuda'].includes(values.device)) throw new UsageError('--device must be auto, cpu or cuda');
  if (values.precision && !(PRECISIONS as readonly string[]).includes(values.precision)) throw new UsageError(`--precision must be ${PRECISIONS.join(' or ')}`);
  if (values.prediction && !['epsilon', 'v_prediction'].includes(values.prediction)) throw new UsageError('--prediction must be epsilon or v_prediction');
  const timesteps = values.timesteps?.split(',').map((t) => num(t.trim(), 'timesteps', true) as number);
  const { generationSeed } = await import('./pipelines');
  // the one seed rule (0..2^64-1), checked before anything loads
  const seed = values.seed === undefined ? undefined : /^-?\d+$/.test(values.seed) ? generationSeed(values.seed.startsWith('-') ? BigInt(values.seed) : values.seed) : undefined;
  if (values.seed !== undefined && seed === undefined) throw new UsageError(`--seed must be an integer in 0..2^64-1, got '${values.seed}'`);
  const { parseLoraArg } = await import('./lora');
  const loras = (values.lora ?? []).map(parseLoraArg);
  // ControlNets: those named by --controlnet, then those --control names, each loaded once
  const { parseControlArg } = await import('./pipelines/control');
  const controlArgs = (values.control ?? []).map((c) => parseControlArg(c, (p) => fs.existsSync(p) && fs.statSync(p).isFile()));
  const controlnets = [...(values.controlnet ?? [])];
  for (const c of controlArgs) if (c.model && !controlnets.includes(c.model)) controlnets.push(c.model);
  if (controlArgs.some((c) => !c.model) && !values.controlnet?.length) throw new UsageError('--control FILE needs a ControlNet: --controlnet DIR_OR_REPO, or --control FILE:CONTROLNET');
  const controlStart = num(values['control-start'], 'control-start');
  const controlEnd = num(values['control-end'], 'control-end');
  if ((controlStart !== undefined || controlEnd !== undefined || values['guess-mode']) && !controlArgs.length) throw new UsageError('--control-start, --control-end and --guess-mode need a --control image');
  const control = controlArgs.length
    ? controlArgs.map((c) => ({ image: c.image, index: controlnets.indexOf(c.model ?? controlnets[0]), scale: c.scale, start: controlStart, end: controlEnd, guessMode: values['guess-mode'] }))
    : undefined;
  if (values.verbose) process.env.ONESTEP_DEBUG = process.env.ONESTEP_DEBUG || '1';
  const out = values.output ?? 'out.png';
  checkOutput(out);
  const quiet = !!values.quiet;
  const line = progressLine(process.stderr, quiet);
  const options = {
    prompt: values.prompt.length === 1 ? values.prompt[0] : values.prompt,
    negativePrompt: values.negative,
    steps: num(values.steps, 'steps', true),
    guidanceScale: num(values.cfg, 'cfg'),
    seed,
    width: num(values.width, 'width', true),
    height: num(values.height, 'height', true),
    batchSize: num(values.batch, 'batch', true),
    scheduler: values.scheduler as SchedulerName | undefined,
    timesteps,
    eta: num(values.eta, 'eta'),
    image: values.image,
    resizeImage: !values['no-resize'],
    control,
    strength: num(values.strength, 'strength'),
  };
  const { loadPipeline, resolveLoraFile } = await import('./pipelines');
  const t0 = Date.now();
  line.update(`loading ${values.model} ...`);
  const taesd = values.taesd === undefined ? undefined : values.taesd === '' || values.taesd === 'true' ? true : values.taesd;
  const onDownloadProgress = (e: { file: string; downloaded: number; total?: number }) =>
    line.update(`downloading ${e.file} ${e.total ? bar(e.downloaded / e.total, 16) : ''} ${(e.downloaded / 2 ** 20).toFixed(1)} MiB`);
  const pipe = await loadPipeline(values.model, {
    device: values.device as 'auto' | 'cpu' | 'cuda' | undefined,
    precision: values.precision as Precision | undefined,
    variant: values.variant,
    config: values.config,
    prediction: values.prediction as 'epsilon' | 'v_prediction' | undefined,
    taesd,
    vae: values.vae,
    controlnet: controlnets.length ? controlnets : undefined,
    // one generate() per run: nothing is reused, so each stage's memory goes once it has run
    lowMemory: true,
    onDownloadProgress,
  });
  try {
    if (loras.length) {
      const specs = [];
      for (const l of loras) specs.push({ ...l, path: await resolveLoraFile(l.path, { onDownloadProgress }) });
      const loraWarnings: string[] = [];
      const report = await pipe.loadLoras(specs, { strict: !!values['strict-lora'], onWarning: (w) => loraWarnings.push(w) });
      line.done();
      for (const a of report.adapters) {
        if (quiet) break;
        const parts = Object.entries(a.byComponent).map(([c, n]) => `${c} ${n}`).join(', ');
        console.error(`LoRA ${a.name} (${a.format}) x${a.scale}: ${a.matched} modules (${parts})${a.skipped.length ? `; ${a.skipped.length} tensors not applied` : ''}`);
      }
      if (!quiet) for (const w of loraWarnings) console.error(`warning: ${w}`);
    }
  } catch (e) {
    pipe.dispose();
    throw e;
  }
  const loaded = Date.now();
  try {
    const warnings: string[] = [];
    const images = await pipe.generate({
      ...options,
      onWarning: (w) => warnings.push(w),
      onProgress: (e) => {
        if (e.stage === 'denoise') line.update(`denoising ${bar(e.step / Math.max(1, e.steps))} step ${e.step}/${e.steps} ${(e.elapsedMs / 1000).toFixed(1)} s`);
        else line.update(`${e.stage === 'encode' ? 'encoding the prompt' : 'decoding'} ... ${(e.elapsedMs / 1000).toFixed(1)} s`);
      },
    });
    const ext = path.extname(out) || '.png';
    const base = out.slice(0, out.length - path.extname(out).length);
    const files = images.length === 1 ? [out] : images.map((_, i) => `${base}-${i + 1}${ext}`);
    await Promise.all(images.map((img, i) => img.save(files[i], { metadata: !values['no-metadata'] })));
    line.done();
    if (!quiet) {
      for (const w of warnings) console.error(`warning: ${w}`);
      const seedNote = images[0].seed !== undefined ? `; seed ${images[0].seed}` : '';
      console.error(`wrote ${files.join(', ')} (${images[0].width}x${images[0].height}${seedNote}; load ${((loaded - t0) / 1000).toFixed(1)} s, generate ${((Date.now() - loaded) / 1000).toFixed(2)} s)`);
    }
    return 0;
  } finally {
    pipe.dispose();
  }
}

/** onestep info IMAGE.png: what made each image, and the command that makes it again. */
async function imageInfo(files: string[], json: boolean): Promise<number> {
  const { readImageMetadata } = await import('./pipelines/metadata');
  const all = [];
  for (const f of files) {
    if (!fs.existsSync(f)) throw new FileNotFoundError(f, 'image');
    const m = readImageMetadata(fs.readFileSync(f), f);
    all.push({ file: f, ...m });
    if (json) continue;
    console.log(`${f}:`);
    if (!m.parameters && !m.onestep) {
      console.log('  no generation parameters in this PNG');
      continue;
    }
    if (m.parameters) for (const l of m.parameters.split('\n')) console.log(`  ${l}`);
    if (m.onestep) console.log(`  remake: ${remakeCommand(m.onestep)}`);
  }
  if (json) console.log(JSON.stringify(files.length === 1 ? all[0] : all, null, 2));
  return 0;
}

/** The generate command line that remakes an image from its onestep record. */
function remakeCommand(p: import('./pipelines/metadata').GenerationParams): string {
  const q = (s: string) => (/^[\w./:@-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);
  const args = ['npx', 'onestep', 'generate', '-m', q(p.model), '-p', q(p.prompt)];
  if (p.negativePrompt) args.push('-n', q(p.negativePrompt));
  args.push('--steps', String(p.steps), '--cfg', String(p.guidanceScale), '--scheduler', p.sampler, '-W', String(p.width), '-H', String(p.height));
  if (p.seed !== undefined) args.push('--seed', p.seed);
  if (p.eta !== undefined) args.push('--eta', String(p.eta));
  if (p.timesteps) args.push('--timesteps', p.timesteps.join(','));
  if (p.strength !== undefined) args.push('--image', 'INPUT.png', '--strength', String(p.strength));
  for (const l of p.loras) args.push('--lora', q(`${l.name}:${l.scale}`));
  if (p.batchSize > 1) args.push('--batch', String(p.batchSize));
  if (p.precision) args.push('--precision', p.precision);
  return args.join(' ');
}

async function download(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { variant: { type: 'string' }, revision: { type: 'string' }, quiet: { type: 'boolean', short: 'q' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help || positionals.length !== 1) {
    console.log('usage: onestep download MODEL [--variant fp16] [--revision REV]');
    return values.help ? 0 : 2;
  }
  const { resolveModelFolder } = await import('./pipelines');
  const line = progressLine(process.stderr, !!values.quiet);
  const dir = await resolveModelFolder(positionals[0], {
    purpose: 'download',
    variant: values.variant,
    revision: values.revision,
    onDownloadProgress: (e) => line.update(`${e.file} ${e.total ? bar(e.downloaded / e.total, 16) : ''} ${(e.downloaded / 2 ** 20).toFixed(1)} MiB`),
  });
  line.done();
  console.log(dir);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'generate':
        return await generate(rest);
      case 'download':
        return await download(rest);
      case 'serve': {
        const { serveMain } = await import('./server/cli');
        return await serveMain(rest);
      }
      case 'info': {
        if (rest.includes('--help') || rest.includes('-h')) {
          console.log('usage: onestep info [--json]              version, backends, CUDA devices or why CUDA is unusable\n       onestep info IMAGE.png ... [--json]  the parameters each image was made with, and the command that remakes it');
          return 0;
        }
        const files = rest.filter((a) => a !== '--json');
        if (files.some((f) => f.startsWith('-'))) throw new UsageError(`unknown option ${files.find((f) => f.startsWith('-'))} (usage: onestep info [IMAGE.png ...] [--json])`);
        if (files.length) return imageInfo(files, rest.includes('--json'));
        const i = info();
        console.log(rest.includes('--json') ? JSON.stringify(i, null, 2) : formatInfo(i));
        return 0;
      }
      case 'bench': {
        const { spawnSync } = await import('child_process');
        const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'bench.js'), ...rest], { stdio: 'inherit' });
        return r.status ?? 1;
      }
      case 'golden': {
        const { main: golden } = await import('./golden/cli');
        return golden(rest);
      }
      case 'version':
      case '--version':
      case '-v':
        console.log(version);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return cmd === undefined ? 1 : 0;
      default:
        console.error(`onestep: unknown command '${cmd}'\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`onestep ${cmd}: ${(e as Error).message}`);
      return 2;
    }
    if (e instanceof OnestepError) {
      console.error(`onestep ${cmd}: ${e.message} [${e.code}]`);
      return 1;
    }
    throw e;
  }
}
