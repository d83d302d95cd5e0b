// One file from the hub into blobs/<etag>: metadata by HEAD, transfer into blobs/<etag>.incomplete
// (resumed with Range after a dropped connection or an earlier run), size and sha256 checked, then
// renamed into place atomically.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { downloadTimeoutMs, metadataTimeoutMs } from './env';
import { HubError } from './errors';
import {
  type HttpContext,
  abortError,
  backoffMs,
  headerOf,
  isRetryable,
  markRetryable,
  send,
  sleep,
  statusError,
  toHubError,
  withRetries,
} from './http';
import { SHA256_RE, checkEtag } from './validate';

export interface FileMeta {
  /** Normalized etag: X-Linked-Etag (LFS: the sha256), else ETag, quotes and W/ removed. */
  etag: string;
  /** X-Linked-Size, else Content-Length of a 2xx answer; undefined when the hub gave neither. */
  size: number | undefined;
  /** X-Repo-Commit. */
  commit: string | undefined;
}

/** Attempts per file (the first try included) when the connection drops or the server answers 5xx. */
export const MAX_ATTEMPTS = 6;
const WRITE_BATCH = 4 << 20;

export function normalizeEtag(raw: string): string {
  return raw.trim().replace(/^W\//, '').replace(/^"+|"+$/g, '');
}

function intHeader(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}

/** HEAD the file's resolve URL. Same-origin redirects (renamed repos) are followed; the hub's redirect to its CDN is not: it carries the metadata. */
export async function fileMetadata(ctx: HttpContext, url: URL, file: string): Promise<FileMeta> {
  return withRetries(
    ctx,
    3,
    async () => {
      let res = await send(ctx, url, { method: 'HEAD', timeoutMs: metadataTimeoutMs(), stopAtCrossOrigin: true, file });
      res.body.resume();
      if (res.status >= 400) throw await statusError(ctx, res, file);
      let raw = headerOf(res, 'x-linked-etag') ?? headerOf(res, 'etag');
      if (raw === undefined && res.status >= 300 && res.status < 400) {
        // a redirect without metadata: ask the other end
        res = await send(ctx, url, { method: 'HEAD', timeoutMs: metadataTimeoutMs(), file });
        res.body.resume();
        if (res.status >= 400) throw await statusError(ctx, res, file);
        raw = headerOf(res, 'x-linked-etag') ?? headerOf(res, 'etag');
      }
      if (raw === undefined || normalizeEtag(raw) === '') {
        throw new HubError('ERR_ONESTEP_HUB_INVALID_REPO', `${ctx.endpoint} sent no ETag for ${file} of ${ctx.repoId}: cannot cache it`, {
          repoId: ctx.repoId,
          file,
        });
      }
      const etag = checkEtag(normalizeEtag(raw), file, ctx.repoId);
      const ok2xx = res.status >= 200 && res.status < 300;
      const size = intHeader(headerOf(res, 'x-linked-size')) ?? (ok2xx ? intHeader(headerOf(res, 'content-length')) : undefined);
      return { etag, size, commit: headerOf(res, 'x-repo-commit') };
    },
    file,
  );
}

const LOCAL_FS_CODES = ['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EISDIR', 'ENOTDIR', 'EMFILE', 'ENFILE', 'EFBIG'];

function isLocalFsError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && LOCAL_FS_CODES.includes(code) && !(e instanceof HubError);
}

function sizeOf(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}

async function hashPrefix(file: string, length: number, hash: crypto.Hash): Promise<void> {
  if (length === 0) return;
  for await (const chunk of fs.createReadStream(file, { start: 0, end: length - 1 })) hash.update(chunk as Buffer);
}

export interface BlobTarget {
  url: URL;
  /** Repo path, for messages and progress. */
  file: string;
  meta: FileMeta;
  /** blobs/<etag>. */
  blob: string;
  onBytes: (downloaded: number, total: number | undefined) => void;
}

function integrity(ctx: HttpContext, file: string, message: string): HubError {
  return new HubError('ERR_ONESTEP_HUB_INTEGRITY', `${file} of ${ctx.repoId}: ${message}`, { repoId: ctx.repoId, revision: ctx.revision, file });
}

/**
 * Downloads into `<blob>.incomplete` and renames it to `<blob>`. A partial file from a dropped
 * connection (this run or an earlier one) is resumed with `Range: bytes=N-`; the result must have
 * the announced size and, when the etag is a sha256 (LFS files), that sha256. A resumed partial that
 * turns out wrong is discarded and the file fetched once more from the start.
 */
export async function downloadBlob(ctx: HttpContext, t: BlobTarget): Promise<void> {
  const incomplete = `${t.blob}.incomplete`;
  fs.mkdirSync(path.dirname(t.blob), { recursive: true });
  const wantSha = SHA256_RE.test(t.meta.etag.toLowerCase()) ? t.meta.etag.toLowerCase() : undefined;
  let size = t.meta.size;
  for (let pass = 0; ; pass++) {
    let have = sizeOf(incomplete);
    if (size !== undefined && have > size) {
      fs.rmSync(incomplete, { force: true });
      have = 0;
    }
    const resumedFrom = have;
    let hash = wantSha ? crypto.createHash('sha256') : undefined;
    if (hash && have > 0) await hashPrefix(incomplete, have, hash);
    const restart = () => {
      fs.rmSync(incomplete, { force: true });
      have = 0;
      hash = wantSha ? crypto.createHash('sha256') : undefined;
    };

    let failures = 0;
    let complete = false;
    t.onBytes(have, size);
    while (!complete) {
      try {
        if (size !== undefined && have === size) break;
        const res = await send(ctx, t.url, {
          method: 'GET',
          headers: have > 0 ? { range: `bytes=${have}-` } : {},
          timeoutMs: downloadTimeoutMs(),
          file: t.file,
        });
        if (res.status === 416 && have > 0) {
          // the partial file does not fit the remote one: start over
          res.body.resume();
          restart();
          throw markRetryable(integrity(ctx, t.file, 'the server refused to resume (416)'));
        }
        if (res.status < 200 || res.status >= 300) throw await statusError(ctx, res, t.file);
        if (res.status === 206) {
          const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(headerOf(res, 'content-range') ?? '');
          if (!m || Number(m[1]) !== have) {
            res.body.destroy();
            restart();
            throw markRetryable(integrity(ctx, t.file, `the server resumed at the wrong offset (${headerOf(res, 'content-range') ?? 'no Content-Range'})`));
          }
          if (size === undefined && m[2] !== '*') size = Number(m[2]);
        } else if (have > 0) {
          restart(); // 200: the server ignored Range and sends everything
        }
        if (size === undefined && res.status === 200) size = intHeader(headerOf(res, 'content-length'));

        const fh = await fs.promises.open(incomplete, have > 0 ? 'a' : 'w');
        let pending: Buffer[] = [];
        let pendingBytes = 0;
        const flush = async () => {
          if (pendingBytes === 0) return;
          const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
          pending = [];
          pendingBytes = 0;
          await fh.write(buf);
          hash?.update(buf);
          have += buf.length;
        };
        try {
          for await (const c of res.body) {
            const chunk = c as Buffer;
            if (size !== undefined && have + pendingBytes + chunk.length > size) {
              res.body.destroy();
              throw integrity(ctx, t.file, `the server sent more than the announced ${size} bytes`);
            }
            pending.push(chunk);
            pendingBytes += chunk.length;
            if (pendingBytes >= WRITE_BATCH) await flush();
            t.onBytes(have + pendingBytes, size);
          }
        } finally {
          await flush();
          await fh.close();
        }
        if (size !== undefined && have < size) {
          throw markRetryable(new HubError('ERR_ONESTEP_HUB_NETWORK', `connection closed after ${have} of ${size} bytes of ${t.file}`));
        }
        complete = true;
      } catch (e) {
        if (isLocalFsError(e)) throw e; // disk full, permissions: nothing a retry fixes
        const err = toHubError(e, ctx, t.url, t.file);
        if (err.code === 'ERR_ONESTEP_HUB_INTEGRITY' && !isRetryable(err)) {
          fs.rmSync(incomplete, { force: true });
          throw err;
        }
        failures++;
        if (!isRetryable(err) || failures >= MAX_ATTEMPTS || ctx.signal.aborted) throw err;
        try {
          await sleep(backoffMs(failures - 1), ctx.signal);
        } catch {
          throw ctx.userSignal?.aborted ? abortError(ctx, t.file) : err;
        }
        if (sizeOf(incomplete) !== have) {
          // keep the hash in step with what is on disk
          have = sizeOf(incomplete);
          hash = wantSha ? crypto.createHash('sha256') : undefined;
          if (hash) await hashPrefix(incomplete, have, hash);
        }
      }
    }

    const onDisk = sizeOf(incomplete);
    if (!fs.existsSync(incomplete)) fs.writeFileSync(incomplete, Buffer.alloc(0)); // an empty file
    if (size !== undefined && onDisk !== size) {
      fs.rmSync(incomplete, { force: true });
      throw integrity(ctx, t.file, `size ${onDisk} bytes, expected ${size}`);
    }
    if (wantSha) {
      const got = hash!.digest('hex');
      if (got !== wantSha) {
        fs.rmSync(incomplete, { force: true });
        if (resumedFrom > 0 && pass === 0) continue; // the old partial was bad: once more from zero
        throw integrity(ctx, t.file, `sha256 ${got} does not match the hub's ${wantSha}: the download is corrupt`);
      }
    }
    t.onBytes(onDisk, size ?? onDisk);
    fs.renameSync(incomplete, t.blob);
    return;
  }
}
