// npx onestep <command>: generate, serve, info, download, bench, golden.
import * as path from 'path';
import { parseArgs } from 'util';
import { OnestepError } from './errors';
import { formatInfo, info } from './info';
import { SCHEDULER_NAMES, type SchedulerName } from './schedulers';
import { version } from './version';

const USAGE = `usage: onestep <command> [options]

commands:
  generate -m MODEL -p PROMPT [options]   generate images (see onestep generate --help)
  serve -m MODEL [options]   real-time page and HTTP / WebSocket APIs on 127.0.0.1 (see onestep serve --help)
  download MODEL [--variant fp16] [--revision REV]   fetch a Hugging Face repo into the cache
  info [--json]      version, backends compiled and usable, CUDA devices or why CUDA is unusable
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
      --strength S         img2img strength (default 0.5; without --steps, enough steps to run one)
      --taesd [ID]         decode with TAESD (the family's standard repo, or a folder / repo id)
      --vae PATH           another VAE folder (AutoencoderKL or ConsistencyDecoderVAE)
      --lora FILE[:SCALE]  fuse a LoRA (a .safetensors file or a hub repo id; scale default 1);
                           repeat for several (e.g. an LCM-LoRA and a style LoRA)
      --strict-lora        LoRA keys that match no module are an error (default: a warning)
      --variant NAME       weight variant to prefer (e.g. fp16)
      --config DIR|REPO    single files: the diffusers folder / repo with the model's configs and tokenizers
      --prediction TYPE    single files: epsilon | v_prediction (SD2 files default to v_prediction)
      --device DEV         auto | cpu | cuda
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

async function generate(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
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
      taesd: { type: 'string' },
      vae: { type: 'string' },
      lora: { type: 'string', multiple: true },
      'strict-lora': { type: 'boolean' },
      config: { type: 'string' },
      prediction: { type: 'string' },
      variant: { type: 'string' },
      device: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    },
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
  if (values.prediction && !['epsilon', 'v_prediction'].includes(values.prediction)) throw new UsageError('--prediction must be epsilon or v_prediction');
  const timesteps = values.timesteps?.split(',').map((t) => num(t.trim(), 'timesteps', true) as number);
  const seed = values.seed === undefined ? undefined : /^-?\d+$/.test(values.seed) ? BigInt(values.seed) : undefined;
  if (values.seed !== undefined && seed === undefined) throw new UsageError(`--seed must be an integer, got '${values.seed}'`);
  const { parseLoraArg } = await import('./lora');
  const loras = (values.lora ?? []).map(parseLoraArg);
  const out = values.output ?? 'out.png';
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
    variant: values.variant,
    config: values.config,
    prediction: values.prediction as 'epsilon' | 'v_prediction' | undefined,
    taesd,
    vae: values.vae,
    onDownloadProgress,
  });
  try {
    if (loras.length) {
      const specs = [];
      for (const l of loras) specs.push({ ...l, path: await resolveLoraFile(l.path, { onDownloadProgress }) });
      const report = await pipe.loadLoras(specs, { strict: !!values['strict-lora'] });
      line.done();
      for (const a of report.adapters) {
        if (quiet) break;
        const parts = Object.entries(a.byComponent).map(([c, n]) => `${c} ${n}`).join(', ');
        console.error(`LoRA ${a.name} (${a.format}) x${a.scale}: ${a.matched} modules (${parts})${a.skipped.length ? `; ${a.skipped.length} tensors not applied` : ''}`);
      }
    }
  } catch (e) {
    pipe.dispose();
    throw e;
  }
  const loaded = Date.now();
  try {
    const images = await pipe.generate({
      ...options,
      onProgress: (e) => {
        if (e.stage === 'denoise') line.update(`denoising ${bar(e.step / Math.max(1, e.steps))} step ${e.step}/${e.steps} ${(e.elapsedMs / 1000).toFixed(1)} s`);
        else line.update(`${e.stage === 'encode' ? 'encoding the prompt' : 'decoding'} ... ${(e.elapsedMs / 1000).toFixed(1)} s`);
      },
    });
    const ext = path.extname(out) || '.png';
    const base = out.slice(0, out.length - path.extname(out).length);
    const files = images.length === 1 ? [out] : images.map((_, i) => `${base}-${i + 1}${ext}`);
    await Promise.all(images.map((img, i) => img.save(files[i])));
    line.done();
    if (!quiet) {
      console.error(`wrote ${files.join(', ')} (${images[0].width}x${images[0].height}; load ${((loaded - t0) / 1000).toFixed(1)} s, generate ${((Date.now() - loaded) / 1000).toFixed(2)} s)`);
    }
    return 0;
  } finally {
    pipe.dispose();
  }
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
