// resolveModel(): a local folder as it is, or a Hugging Face repo id downloaded (only what a
// diffusers pipeline needs) into the shared Hugging Face cache, returning the snapshot folder.
import * as fs from 'fs';
import * as path from 'path';
import { ArgumentError, FileNotFoundError } from '../errors';
import { RepoCache } from './cache';
import { type FileMeta, downloadBlob, fileMetadata } from './download';
import { hubCacheDir, hubEndpoint, hubToken, offlineFromEnv } from './env';
import { HubAbortError, HubError } from './errors';
import { type HttpContext, abortError, createAgents, readBody, send, statusError, toHubError, withRetries } from './http';
import { globToRegExp, indexShards, pipelineComponents, planFolder } from './select';
import { COMMIT_RE, checkRepoId, checkRepoPath, checkRevision, checkShardName, checkVariant } from './validate';

export interface DownloadProgress {
  /** Path of the file inside the repository, e.g. 'unet/diffusion_pytorch_model.safetensors'. */
  file: string;
  /** Bytes of this file on disk so far (a resumed download starts above 0). */
  downloaded: number;
  /** The file's size, when the hub announced it. */
  total: number | undefined;
  /** True on the last event of a file (verified and in place). */
  done: boolean;
}

export interface ResolveOptions {
  /** Branch, tag or commit sha (default 'main'). */
  revision?: string;
  /** e.g. 'fp16': take `*.fp16.safetensors` (or the fp16 shard index) where a component has it, else the plain weights. */
  variant?: string;
  /** Access token; default HF_TOKEN, else the file HF_HOME/token. `false` sends none. */
  token?: string | false;
  /** Called as bytes arrive (at most every 100 ms per file, and once when a file is done). Errors it throws are ignored. */
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Use only the cache (default: HF_HUB_OFFLINE). */
  offline?: boolean;
  /** Download exactly the repo files matching these fnmatch patterns instead of the pipeline's files. */
  allowPatterns?: string[];
  /** Only these component folders of a pipeline (names from model_index.json), e.g. ['unet', 'vae']. */
  components?: string[];
  /** Cache folder (default HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Hub URL (default HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** Files transferred at once (default 4). */
  concurrency?: number;
}

export interface ResolvedModel {
  /** The local folder (or file) as given, or the snapshot folder in the cache. */
  dir: string;
  repoId?: string;
  revision?: string;
  commit?: string;
  /** Repo paths transferred by this call (empty when everything was cached). */
  downloaded: string[];
  /** True when the snapshot came from the cache without asking the hub (offline mode, or the hub unreachable). */
  offline?: boolean;
}

/** Something that is not a repo id and can only be meant as a path. */
function looksLikePath(s: string): boolean {
  return path.isAbsolute(s) || s.startsWith('.') || s.startsWith('~') || s.includes('\\') || s.split('/').length !== 2;
}

function checkOptions(o: ResolveOptions): void {
  const strList = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string' && x !== '');
  if (o.allowPatterns !== undefined && (!strList(o.allowPatterns) || o.allowPatterns.length === 0)) {
    throw new ArgumentError('resolveModel: allowPatterns must be a non-empty array of strings');
  }
  if (o.components !== undefined && (!strList(o.components) || o.components.length === 0)) {
    throw new ArgumentError('resolveModel: components must be a non-empty array of component names');
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new ArgumentError('resolveModel: onProgress must be a function');
  if (o.token !== undefined && o.token !== false && typeof o.token !== 'string') throw new ArgumentError('resolveModel: token must be a string');
  if (o.concurrency !== undefined && !(Number.isInteger(o.concurrency) && o.concurrency >= 1 && o.concurrency <= 64)) {
    throw new ArgumentError('resolveModel: concurrency must be an integer from 1 to 64');
  }
  const sig = o.signal as { aborted?: unknown; addEventListener?: unknown } | undefined;
  if (sig !== undefined && (typeof sig?.aborted !== 'boolean' || typeof sig.addEventListener !== 'function')) {
    throw new ArgumentError('resolveModel: signal must be an AbortSignal');
  }
  if (o.endpoint !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(o.endpoint);
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new ArgumentError(`resolveModel: endpoint ${JSON.stringify(o.endpoint)} is not an http(s) URL`);
  }
}

function readJson(file: string, repoPath: string, repoId: string): unknown {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (st.size > 64 << 20) throw new Error(`${st.size} bytes`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new HubError('ERR_ONESTEP_HUB_INVALID_REPO', `${repoId}: cannot read ${repoPath}: ${(e as Error).message}`, { repoId, file: repoPath, cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HubError('ERR_ONESTEP_HUB_INVALID_REPO', `${repoId}: ${repoPath} is not valid JSON: ${(e as Error).message}`, {
      repoId,
      file: repoPath,
      cause: e,
    });
  }
}

/** Where files come from: the hub (downloading into the cache) or a cached snapshot. */
interface Source {
  readonly files: ReadonlySet<string>;
  /** A local readable path of the repo file (downloaded when needed). */
  get(repoPath: string): Promise<string>;
  /** The error for a needed file that is not available. */
  missing(repoPath: string, why: string): HubError;
  /** The error for a component without usable weights. */
  noWeights(folder: string, message: string): HubError;
}

/** Runs tasks that may add more tasks; on the first failure aborts the rest and rethrows it. */
class TaskGroup {
  private tasks: Promise<void>[] = [];
  private failed = false;
  private error: unknown;
  constructor(private readonly inner: AbortController) {}
  add(p: Promise<unknown>): void {
    this.tasks.push(
      p.then(
        () => undefined,
        (e) => {
          if (!this.failed) {
            this.failed = true;
            this.error = e;
            this.inner.abort();
          }
        },
      ),
    );
  }
  async wait(): Promise<void> {
    for (let n = 0; n < this.tasks.length; ) {
      const batch = this.tasks.slice(n);
      n = this.tasks.length;
      await Promise.all(batch);
    }
    if (this.failed) throw this.error;
  }
}

/** Picks the needed files of a repo from `source`, fetching them through it; returns their repo paths. */
async function collect(source: Source, repoId: string, opts: ResolveOptions, group: TaskGroup): Promise<Set<string>> {
  const needed = new Set<string>();
  const want = (p: string) => {
    if (needed.has(p)) return;
    needed.add(p);
    group.add(source.get(p));
  };
  if (opts.allowPatterns) {
    const res = opts.allowPatterns.map(globToRegExp);
    const matched = [...source.files].filter((f) => res.some((r) => r.test(f)));
    if (matched.length === 0) throw source.missing(opts.allowPatterns.join(', '), 'no file matches allowPatterns');
    matched.forEach(want);
    return needed;
  }
  const folder = (name: string, why: string) => {
    const fp = planFolder(source.files, name, opts.variant);
    const label = name === '' ? repoId : `${name}/`;
    if (fp.empty) throw source.missing(label, why);
    if (!fp.weights && (fp.needsWeights || fp.unsupported.length > 0 || fp.variants.length > 0)) {
      const parts: string[] = [];
      if (fp.variants.length > 0) parts.push(`only variant weights (${fp.variants.join(', ')}): pass { variant: '${fp.variants[0]}' }`);
      if (fp.unsupported.length > 0) parts.push(`only ${fp.unsupported.join(', ')} (onestep reads safetensors only)`);
      if (parts.length === 0) parts.push('no weights');
      throw source.noWeights(name, `${repoId}: ${label} has no safetensors weights${opts.variant ? ` (variant '${opts.variant}' or plain)` : ''}: ${parts.join('; ')}`);
    }
    for (const f of fp.files) if (f !== fp.weights) want(f);
    if (fp.weights && !fp.weightsAreIndex) want(fp.weights);
    if (fp.weights && fp.weightsAreIndex) {
      const index = fp.weights;
      needed.add(index);
      group.add(
        source.get(index).then((local) => {
          for (const shard of indexShards(readJson(local, index, repoId), `${repoId}: ${index}`)) {
            const s = checkShardName(shard, `${repoId}: ${index}`, repoId);
            const p = name === '' ? s : `${name}/${s}`;
            if (!source.files.has(p)) throw source.missing(p, `named by ${index}`);
            want(p);
          }
        }),
      );
    }
  };
  if (source.files.has('model_index.json')) {
    needed.add('model_index.json');
    const mi = readJson(await source.get('model_index.json'), 'model_index.json', repoId);
    let components = pipelineComponents(mi, repoId);
    if (opts.components) {
      const unknown = opts.components.filter((c) => !components.includes(c));
      if (unknown.length > 0) {
        throw new ArgumentError(`resolveModel: ${repoId} has no component ${unknown.join(', ')} (model_index.json lists: ${components.join(', ')})`);
      }
      components = [...new Set(opts.components)];
    }
    for (const c of components) folder(c, `the folder of component '${c}' listed in model_index.json`);
  } else if (source.files.has('config.json')) {
    folder('', 'single-model repo');
  } else {
    throw source.missing('model_index.json', 'neither model_index.json (a diffusers pipeline) nor config.json (a single model) is there');
  }
  return needed;
}

function progressReporter(cb: ResolveOptions['onProgress']): (file: string, downloaded: number, total: number | undefined, done: boolean) => void {
  if (!cb) return () => undefined;
  const last = new Map<string, number>();
  return (file, downloaded, total, done) => {
    const now = Date.now();
    const prev = last.get(file);
    if (!done && prev !== undefined && now - prev < 100) return;
    last.set(file, now);
    try {
      cb({ file, downloaded, total, done });
    } catch {
      // a failing progress callback must not break the download
    }
  };
}

/** Downloads in progress in this process, by blob path (two files with the same content share a blob). */
const blobsInFlight = new Map<string, Promise<void>>();

function encodePath(p: string): string {
  return p.split('/').map(encodeURIComponent).join('/');
}

interface RevisionInfo {
  commit: string;
  files: Set<string>;
}

async function revisionInfo(ctx: HttpContext): Promise<RevisionInfo> {
  const url = new URL(`${ctx.endpoint}/api/models/${ctx.repoId}/revision/${encodeURIComponent(ctx.revision)}`);
  const body = await withRetries(ctx, 3, async () => {
    const res = await send(ctx, url, { method: 'GET', timeoutMs: 30_000 });
    if (res.status !== 200) throw await statusError(ctx, res);
    return readBody(res, 64 << 20);
  });
  let info: { sha?: unknown; siblings?: unknown };
  try {
    info = JSON.parse(body.toString('utf8')) as typeof info;
  } catch (e) {
    throw new HubError('ERR_ONESTEP_HUB_INVALID_REPO', `${ctx.endpoint}: the answer about ${ctx.repoId}@${ctx.revision} is not JSON`, {
      repoId: ctx.repoId,
      cause: e,
    });
  }
  if (typeof info !== 'object' || info === null || typeof info.sha !== 'string' || !COMMIT_RE.test(info.sha) || !Array.isArray(info.siblings)) {
    throw new HubError('ERR_ONESTEP_HUB_INVALID_REPO', `${ctx.endpoint}: the answer about ${ctx.repoId}@${ctx.revision} has no commit sha or file list`, {
      repoId: ctx.repoId,
    });
  }
  const files = new Set<string>();
  for (const s of info.siblings as unknown[]) {
    files.add(checkRepoPath((s as { rfilename?: unknown } | null)?.rfilename, `the file list of ${ctx.repoId}`, ctx.repoId));
  }
  return { commit: info.sha, files };
}

async function resolveOffline(cache: RepoCache, repoId: string, revision: string, opts: ResolveOptions): Promise<ResolvedModel> {
  const hint = `offline mode (HF_HUB_OFFLINE / { offline: true }) uses only the cache at ${cache.cacheDir}; run once online to download it`;
  const commit = cache.readRef(revision);
  if (commit === undefined || !fs.existsSync(cache.snapshotDir(commit))) {
    throw new HubError('ERR_ONESTEP_HUB_OFFLINE', `${repoId}@${revision} is not in the cache: ${hint}`, { repoId, revision });
  }
  const files = new Set(cache.listSnapshot(commit));
  const source: Source = {
    files,
    get: async (p) => {
      if (!files.has(p)) throw source.missing(p, 'not cached');
      return cache.snapshotPath(commit, p);
    },
    missing: (p, why) =>
      new HubError('ERR_ONESTEP_HUB_OFFLINE', `${repoId}@${revision}: ${p} is not in the cached snapshot ${commit} (${why}): ${hint}`, {
        repoId,
        revision,
        file: p,
      }),
    noWeights: (folder, message) =>
      new HubError('ERR_ONESTEP_HUB_OFFLINE', `${message} in the cache: ${hint}`, { repoId, revision, file: folder }),
  };
  const group = new TaskGroup(new AbortController());
  try {
    await collect(source, repoId, opts, group);
  } catch (e) {
    group.add(Promise.reject(e));
  }
  await group.wait();
  return { dir: cache.snapshotDir(commit), repoId, revision, commit, downloaded: [], offline: true };
}

/**
 * Resolves a model location. An existing local folder (or file) is returned untouched. A Hugging
 * Face repo id ('org/name') is downloaded — only what a diffusers pipeline needs — into the
 * Hugging Face cache (shared with Python's huggingface_hub) and its snapshot folder returned.
 */
export async function resolveModel(idOrDir: string, options: ResolveOptions = {}): Promise<ResolvedModel> {
  if (typeof idOrDir !== 'string' || idOrDir === '') throw new ArgumentError('resolveModel: expected a folder or a repo id (org/name)');
  if (typeof options !== 'object' || options === null) throw new ArgumentError('resolveModel: options must be an object');
  checkOptions(options);
  if (fs.existsSync(idOrDir)) return { dir: idOrDir, downloaded: [] };
  if (looksLikePath(idOrDir)) throw new FileNotFoundError(idOrDir, 'model folder');
  const repoId = checkRepoId(idOrDir);
  const revision = checkRevision(options.revision ?? 'main');
  const opts: ResolveOptions = { ...options, variant: options.variant === undefined ? undefined : checkVariant(options.variant) };
  if (opts.signal?.aborted) throw new HubAbortError(`download of ${repoId} aborted`, { repoId, revision, cause: opts.signal.reason });

  const cache = new RepoCache(path.resolve(opts.cacheDir ?? hubCacheDir()), repoId);
  if (opts.offline ?? offlineFromEnv()) return resolveOffline(cache, repoId, revision, opts);

  const inner = new AbortController();
  const onUserAbort = () => inner.abort();
  opts.signal?.addEventListener('abort', onUserAbort, { once: true });
  const ctx: HttpContext = {
    endpoint: (opts.endpoint ?? hubEndpoint()).replace(/\/+$/, ''),
    repoId,
    revision,
    token: hubToken(opts.token),
    signal: inner.signal,
    userSignal: opts.signal,
    agents: createAgents(),
  };
  try {
    let info: RevisionInfo;
    try {
      info = await revisionInfo(ctx);
    } catch (e) {
      if (e instanceof HubError && e.code === 'ERR_ONESTEP_HUB_NETWORK' && !opts.signal?.aborted) {
        // as huggingface_hub: when the hub cannot be reached, a complete cached snapshot will do
        try {
          return await resolveOffline(cache, repoId, revision, opts);
        } catch {
          throw e;
        }
      }
      throw e;
    }
    return await download(ctx, inner, cache, info, opts);
  } catch (e) {
    // whatever failed first, an abort by the caller is reported as such
    if (opts.signal?.aborted && !(e instanceof HubAbortError)) throw abortError(ctx);
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onUserAbort);
    ctx.agents.http.destroy();
    ctx.agents.https.destroy();
  }
}

async function download(
  ctx: HttpContext,
  inner: AbortController,
  cache: RepoCache,
  info: RevisionInfo,
  opts: ResolveOptions,
): Promise<ResolvedModel> {
  const { commit, files } = info;
  const report = progressReporter(opts.onProgress);
  const limit = opts.concurrency ?? 4;
  let active = 0;
  const queue: (() => void)[] = [];
  const slot = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= limit) await new Promise<void>((r) => queue.push(r)); // the slot is handed over
    else active++;
    try {
      return await fn();
    } finally {
      const next = queue.shift();
      if (next) next();
      else active--;
    }
  };

  /** repo path -> blob, for files that must be linked into the snapshot at the end. */
  const toLink = new Map<string, string>();
  const transferred = new Set<string>();
  const memo = new Map<string, Promise<string>>();

  const fetchOne = async (p: string): Promise<string> => {
    if (ctx.signal.aborted) throw toHubError(new Error('aborted'), ctx, undefined, p);
    const url = new URL(`${ctx.endpoint}/${ctx.repoId}/resolve/${commit}/${encodePath(p)}`);
    const meta: FileMeta = await fileMetadata(ctx, url, p);
    if (meta.commit !== undefined && meta.commit !== commit) {
      throw new HubError('ERR_ONESTEP_HUB_INTEGRITY', `${ctx.repoId}: ${p} was served from commit ${meta.commit}, expected ${commit}`, {
        repoId: ctx.repoId,
        file: p,
      });
    }
    const blob = cache.blobPath(meta.etag);
    const blobOk = () => {
      try {
        const st = fs.statSync(blob);
        return st.isFile() && (meta.size === undefined || st.size === meta.size);
      } catch {
        return false;
      }
    };
    for (;;) {
      if (blobOk()) break;
      const running = blobsInFlight.get(blob);
      if (running) {
        // the same content is being fetched (another file, or another call): wait for it, or take over if it failed
        await running.catch(() => undefined);
        if (ctx.signal.aborted) throw toHubError(new Error('aborted'), ctx, url, p);
        continue;
      }
      const job = downloadBlob(ctx, {
        url,
        file: p,
        meta,
        blob,
        onBytes: (downloaded, total) => report(p, downloaded, total, false),
      });
      blobsInFlight.set(blob, job);
      try {
        await job;
      } finally {
        if (blobsInFlight.get(blob) === job) blobsInFlight.delete(blob);
      }
      transferred.add(p);
      report(p, fs.statSync(blob).size, meta.size ?? fs.statSync(blob).size, true);
      break;
    }
    toLink.set(p, blob);
    return blob;
  };

  const source: Source = {
    files,
    get: (p) => {
      let m = memo.get(p);
      if (!m) {
        if (!files.has(p)) return Promise.reject(source.missing(p, 'not in the repository'));
        m = cache.hasSnapshotFile(commit, p) ? Promise.resolve(cache.snapshotPath(commit, p)) : slot(() => fetchOne(p));
        memo.set(p, m);
      }
      return m;
    },
    missing: (p, why) =>
      new HubError('ERR_ONESTEP_HUB_NOT_FOUND', `no such file ${p} in ${ctx.repoId}@${ctx.revision} (${why})`, {
        repoId: ctx.repoId,
        revision: ctx.revision,
        file: p,
      }),
    noWeights: (folder, message) =>
      new HubError('ERR_ONESTEP_HUB_NO_SAFETENSORS', message, { repoId: ctx.repoId, revision: ctx.revision, file: folder }),
  };

  const group = new TaskGroup(inner); // the first failure aborts the other transfers
  try {
    await collect(source, ctx.repoId, opts, group);
  } catch (e) {
    group.add(Promise.reject(e));
  }
  await group.wait();

  // Every file is verified and in blobs/: now the snapshot links, then the ref.
  for (const [p, blob] of toLink) cache.link(commit, p, blob);
  cache.writeRef(ctx.revision, commit);
  return {
    dir: cache.snapshotDir(commit),
    repoId: ctx.repoId,
    revision: ctx.revision,
    commit,
    downloaded: [...transferred].sort(),
  };
}
