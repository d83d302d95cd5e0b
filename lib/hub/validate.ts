// Strict checks of everything that comes from the caller or the server and ends up in a path or URL.
import { HubError } from './errors';

const NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$/;

/** 'org/name' with the hub's rules: [A-Za-z0-9_.-], no leading/trailing '.' or '-', no '--' or '..', <= 96 chars each. */
export function isRepoId(id: string): boolean {
  const parts = id.split('/');
  if (parts.length !== 2) return false;
  return parts.every((p) => NAME.test(p) && !p.includes('--') && !p.includes('..')) && !parts[1]!.endsWith('.git');
}

export function checkRepoId(id: string): string {
  if (!isRepoId(id)) {
    throw new HubError(
      'ERR_ONESTEP_HUB_INVALID_ID',
      `invalid Hugging Face repo id ${JSON.stringify(id)}: expected 'org/name' made of letters, digits, '_', '-' and '.' ` +
        "(not starting or ending with '-' or '.', no '--' or '..')",
      { repoId: id },
    );
  }
  return id;
}

const REV_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** A branch, tag, commit sha or 'refs/pr/N': [A-Za-z0-9_.-] segments joined by '/', no '..'. */
export function checkRevision(revision: string): string {
  const ok =
    typeof revision === 'string' &&
    revision.length > 0 &&
    revision.length <= 256 &&
    !revision.includes('..') &&
    revision.split('/').every((s) => REV_SEGMENT.test(s) && !s.endsWith('.lock'));
  if (!ok) {
    throw new HubError('ERR_ONESTEP_HUB_INVALID_ID', `invalid revision ${JSON.stringify(revision)}: expected a branch, tag or commit sha`, {
      revision: String(revision),
    });
  }
  return revision;
}

export function checkVariant(variant: string): string {
  if (typeof variant !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(variant)) {
    throw new HubError('ERR_ONESTEP_HUB_INVALID_ID', `invalid variant ${JSON.stringify(variant)}: expected letters, digits, '_' or '-' (e.g. 'fp16')`);
  }
  return variant;
}

export const COMMIT_RE = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;
export const SHA256_RE = /^[0-9a-f]{64}$/;

/** Why a repo file path is unsafe, or undefined when it is a plain relative path. */
export function unsafeReason(p: unknown): string | undefined {
  if (typeof p !== 'string' || p === '') return 'not a non-empty string';
  if (p.length > 1024) return 'too long';
  if (p.includes('\\')) return 'contains a backslash';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(p)) return 'contains control characters';
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) return 'is an absolute path';
  if (process.platform === 'win32' && p.includes(':')) return "contains ':'";
  for (const seg of p.split('/')) {
    if (seg === '') return 'has an empty path segment';
    if (seg === '.' || seg === '..') return `has a '${seg}' segment`;
  }
  return undefined;
}

/** Throws ERR_ONESTEP_HUB_UNSAFE_PATH unless `p` is a plain relative path inside the repo. */
export function checkRepoPath(p: unknown, where: string, repoId?: string): string {
  const why = unsafeReason(p);
  if (why !== undefined) {
    throw new HubError('ERR_ONESTEP_HUB_UNSAFE_PATH', `refusing file name ${JSON.stringify(p)} from ${where}: it ${why}`, {
      repoId,
      file: typeof p === 'string' ? p : undefined,
    });
  }
  return p as string;
}

/** A shard name from a weight index: one plain file name (no folder), ending in .safetensors. */
export function checkShardName(name: unknown, index: string, repoId?: string): string {
  checkRepoPath(name, index, repoId);
  if ((name as string).includes('/') || !(name as string).endsWith('.safetensors')) {
    throw new HubError(
      'ERR_ONESTEP_HUB_UNSAFE_PATH',
      `refusing shard name ${JSON.stringify(name)} in ${index}: shards must be plain *.safetensors file names next to the index`,
      { repoId, file: index },
    );
  }
  return name as string;
}

/** An etag becomes a file name in blobs/: only [A-Za-z0-9_-], at most 128 characters. */
export function checkEtag(etag: string, file: string, repoId?: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$/.test(etag)) {
    throw new HubError('ERR_ONESTEP_HUB_UNSAFE_PATH', `refusing etag ${JSON.stringify(etag)} of ${file}: not a plain hash`, { repoId, file });
  }
  return etag;
}
