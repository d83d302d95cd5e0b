// npx onestep serve -m MODEL: the page and the APIs on 127.0.0.1 until SIGINT / SIGTERM.
import { parseArgs } from 'util';
import { type ArgSpec, normalizeArgs, parseArgsOptions } from '../cli_args';
import { PRECISIONS, type Precision } from '../graph';
import { DEFAULT_LIMITS, DEFAULT_PORT, type ServerLimits } from './options';
import type { GenerationEvent } from './service';
import type { RequestEvent } from './server';

export const SERVE_USAGE = `usage: onestep serve -m MODEL [options]

  -m, --model MODEL       a diffusers folder, a single-file .safetensors checkpoint or a Hugging Face repo id
      --host HOST         address to listen on (default 127.0.0.1: this machine only;
                          0.0.0.0 exposes it to the network: set an API key)
      --port N            port (default ${DEFAULT_PORT}; 0 picks a free one)
      --api-key KEY       require this key on API calls (or set ONESTEP_API_KEY, which keeps it
                          out of the process list)
      --cors ORIGIN       let pages from ORIGIN call the API (repeatable; '*' for any)
      --allow-host NAME   accept this Host header too (repeatable; loopback names always work)
      --max-size N        largest width / height (default ${DEFAULT_LIMITS.maxWidth})
      --max-steps N       most steps per request (default ${DEFAULT_LIMITS.maxSteps})
      --max-batch N       most images per request (default ${DEFAULT_LIMITS.maxBatch})
      --max-body BYTES    largest request body / WebSocket message (default ${DEFAULT_LIMITS.maxBodyBytes})
      --max-queue N       most requests waiting; more get 503 (default ${DEFAULT_LIMITS.maxQueue})
      --taesd [ID]        decode with TAESD (the family's standard repo, or a folder / repo id)
      --vae PATH          another VAE folder
      --lora FILE[:SCALE] fuse a LoRA (repeatable)
      --controlnet DIR|REPO  load a ControlNet (repeatable): requests send control images, the page
                          gets a scribble canvas
      --variant NAME      weight variant to prefer (e.g. fp16)
      --config DIR|REPO   single files: the diffusers folder / repo with the model's configs and tokenizers
      --prediction TYPE   single files: epsilon | v_prediction
      --device DEV        auto | cpu | cuda
      --precision P       fp32 (default) | bf16 (the CPU's GEMMs with bf16 operands; CPUs with AVX512_BF16 or AMX-BF16)
  -q, --quiet             no request log`;

class UsageError extends Error {}

function int(v: string | undefined, what: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min) throw new UsageError(`--${what} must be an integer >= ${min}, got '${v}'`);
  return n;
}

const SERVE_ARGS = {
  model: { type: 'string', short: 'm' },
  host: { type: 'string' },
  port: { type: 'string' },
  'api-key': { type: 'string' },
  cors: { type: 'string', multiple: true },
  'allow-host': { type: 'string', multiple: true },
  'max-size': { type: 'string' },
  'max-steps': { type: 'string' },
  'max-batch': { type: 'string' },
  'max-body': { type: 'string' },
  'max-queue': { type: 'string' },
  taesd: { type: 'string', optional: true },
  vae: { type: 'string' },
  lora: { type: 'string', multiple: true },
  controlnet: { type: 'string', multiple: true },
  variant: { type: 'string' },
  config: { type: 'string' },
  prediction: { type: 'string' },
  device: { type: 'string' },
  precision: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} satisfies Record<string, ArgSpec>;

/** Runs the server until a signal; resolves with the exit code. OnestepErrors propagate (exit 1). */
export async function serveMain(argv: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: normalizeArgs(argv, SERVE_ARGS),
      options: parseArgsOptions(SERVE_ARGS),
      allowPositionals: false,
      strict: true,
    }).values;
    if (values.help) {
      console.log(SERVE_USAGE);
      return 0;
    }
    if (!values.model) throw new UsageError('--model (-m) is required');
    if (values.device && !['auto', 'cpu', 'cuda'].includes(values.device)) throw new UsageError('--device must be auto, cpu or cuda');
    if (values.precision && !(PRECISIONS as readonly string[]).includes(values.precision)) throw new UsageError(`--precision must be ${PRECISIONS.join(' or ')}`);
    if (values.prediction && !['epsilon', 'v_prediction'].includes(values.prediction)) throw new UsageError('--prediction must be epsilon or v_prediction');
  } catch (e) {
    console.error(`onestep serve: ${(e as Error).message}`);
    return 2;
  }
  let limits: Partial<ServerLimits>;
  let port: number | undefined;
  try {
    const size = int(values['max-size'], 'max-size', 8);
    limits = {
      maxWidth: size,
      maxHeight: size,
      maxSteps: int(values['max-steps'], 'max-steps', 1),
      maxBatch: int(values['max-batch'], 'max-batch', 1),
      maxBodyBytes: int(values['max-body'], 'max-body', 1024),
      maxQueue: int(values['max-queue'], 'max-queue', 0),
    };
    port = int(values.port, 'port', 0);
  } catch (e) {
    console.error(`onestep serve: ${(e as Error).message}`);
    return 2;
  }
  const quiet = !!values.quiet;
  const { serve } = await import('./serve');
  const taesd = values.taesd === undefined ? undefined : values.taesd === '' || values.taesd === 'true' ? true : values.taesd;
  const { parseLoraArg } = await import('../lora');
  const loras = (values.lora ?? []).map(parseLoraArg); // loadPipeline resolves files and hub repo ids
  let t0 = Date.now();
  const server = await serve(values.model, {
    host: values.host,
    port,
    apiKey: values['api-key'] ?? (process.env.ONESTEP_API_KEY || undefined),
    corsOrigins: values.cors,
    allowedHosts: values['allow-host'],
    limits,
    load: {
      device: values.device as 'auto' | 'cpu' | 'cuda' | undefined,
      precision: values.precision as Precision | undefined,
      variant: values.variant,
      config: values.config,
      prediction: values.prediction as 'epsilon' | 'v_prediction' | undefined,
      taesd,
      vae: values.vae,
      loras,
      controlnet: values.controlnet,
    },
    onLoading: () => {
      t0 = Date.now();
      if (!quiet) console.error(`loading ${values.model} ...`);
    },
  });
  const o = server.options;
  const p = server.service.pipeline;
  console.log(`onestep: serving ${p.name} (${p.family}, ${p.defaults.width}x${p.defaults.height}, ${p.defaults.steps} step${p.defaults.steps === 1 ? '' : 's'}) at ${server.url}`);
  if (!quiet) {
    console.error(`  loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s; page ${server.url}, API ${server.url}generate, ${server.url}v1/images/generations, WebSocket ${server.url.replace(/^http/, 'ws')}ws`);
    console.error(`  API key: ${o.apiKey ? 'required' : 'none'}; limits: ${o.limits.maxWidth}x${o.limits.maxHeight}, ${o.limits.maxSteps} steps, batch ${o.limits.maxBatch}, queue ${o.limits.maxQueue}; Ctrl-C stops`);
    server.on('request', (e: RequestEvent) => console.error(`${new Date().toISOString()} ${e.method} ${e.path} ${e.status} ${e.ms.toFixed(0)} ms`));
    server.on('generation', (e: GenerationEvent) => {
      if (e.source === 'ws') console.error(`${new Date().toISOString()} ws generate ${e.outcome}${e.error ? ` ${e.error.code}` : ''} ${e.latencyMs.toFixed(0)} ms (queued ${e.queueMs.toFixed(0)} ms)`);
    });
  }
  server.on('internalError', (e: unknown) => console.error(`onestep serve: internal error: ${(e as Error)?.stack ?? e}`));
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        console.error(`onestep serve: ${signal} again; exiting now`);
        process.exit(130);
      }
      stopping = true;
      console.error(`onestep serve: ${signal}: finishing running requests (up to ${o.shutdownGraceMs / 1000} s) ...`);
      server.close().then(
        () => {
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
          console.error('onestep serve: stopped');
          resolve(0);
        },
        (e) => {
          console.error(`onestep serve: shutdown failed: ${(e as Error).message}`);
          resolve(1);
        },
      );
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
}
