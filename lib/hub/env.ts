// Settings read the way huggingface_hub reads them, at call time (never cached at module load).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}

function expandUser(p: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/') || p.startsWith('~\\')) return path.join(os.homedir(), p.slice(2));
  return p;
}

/** huggingface_hub's truthy values: 1, ON, YES, TRUE (any case). */
export function isTrue(value: string | undefined): boolean {
  return value !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(value.trim().toUpperCase());
}

/** HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(): string {
  const home = env('HF_HOME');
  if (home) return path.resolve(expandUser(home));
  const xdg = env('XDG_CACHE_HOME');
  return path.resolve(expandUser(path.join(xdg ?? '~/.cache', 'huggingface')));
}

/** HF_HUB_CACHE (or the older HUGGINGFACE_HUB_CACHE), else HF_HOME/hub. */
export function hubCacheDir(): string {
  const dir = env('HF_HUB_CACHE') ?? env('HUGGINGFACE_HUB_CACHE');
  return dir ? path.resolve(expandUser(dir)) : path.join(hfHome(), 'hub');
}

/** HF_ENDPOINT without its trailing slashes, else https://huggingface.co. */
export function hubEndpoint(): string {
  return (env('HF_ENDPOINT') ?? 'https://huggingface.co').replace(/\/+$/, '');
}

/** HF_HUB_OFFLINE set to a truthy value. */
export function offlineFromEnv(): boolean {
  return isTrue(env('HF_HUB_OFFLINE'));
}

/**
 * The token: the option (false = send none), else HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN),
 * else the file HF_TOKEN_PATH, else HF_HOME/token, as huggingface_hub reads it.
 */
export function hubToken(option: string | false | undefined): string | undefined {
  if (option === false) return undefined;
  if (typeof option === 'string' && option.trim() !== '') return option.trim();
  const fromEnv = env('HF_TOKEN') ?? env('HUGGING_FACE_HUB_TOKEN');
  if (fromEnv && fromEnv.trim() !== '') return fromEnv.trim();
  const file = env('HF_TOKEN_PATH') ? path.resolve(expandUser(env('HF_TOKEN_PATH')!)) : path.join(hfHome(), 'token');
  try {
    const t = fs.readFileSync(file, 'utf8').trim();
    return t === '' ? undefined : t;
  } catch {
    return undefined;
  }
}

function seconds(name: string, fallback: number): number {
  const v = env(name);
  const n = v === undefined ? NaN : Number(v);
  return Number.isFinite(n) && n > 0 ? n * 1000 : fallback * 1000;
}

/** Idle timeout of file downloads, ms (HF_HUB_DOWNLOAD_TIMEOUT seconds, default 10 as huggingface_hub). */
export function downloadTimeoutMs(): number {
  return seconds('HF_HUB_DOWNLOAD_TIMEOUT', 10);
}

/** Timeout of metadata requests (API, HEAD), ms (HF_HUB_ETAG_TIMEOUT seconds, default 10). */
export function metadataTimeoutMs(): number {
  return seconds('HF_HUB_ETAG_TIMEOUT', 10);
}
