// The Hugging Face cache layout, as huggingface_hub writes it (so Python and onestep share caches):
//   <cache>/models--{org}--{name}/blobs/<etag>                 file contents, named by etag (sha256 for LFS files)
//   <cache>/models--{org}--{name}/blobs/<etag>.incomplete      a download in progress (resumed with Range)
//   <cache>/models--{org}--{name}/snapshots/<commit>/<path>    relative symlinks to ../../blobs/<etag> (copies where symlinks fail)
//   <cache>/models--{org}--{name}/refs/<revision>              the commit sha the revision pointed to
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { HubError } from './errors';
import { COMMIT_RE, checkRepoPath } from './validate';

export function repoFolderName(repoId: string): string {
  return `models--${repoId.split('/').join('--')}`;
}

function tmpName(target: string): string {
  return `${target}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
}

function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

export class RepoCache {
  readonly root: string;
  readonly blobsDir: string;
  readonly snapshotsDir: string;
  readonly refsDir: string;

  constructor(
    readonly cacheDir: string,
    readonly repoId: string,
  ) {
    this.root = path.join(cacheDir, repoFolderName(repoId));
    this.blobsDir = path.join(this.root, 'blobs');
    this.snapshotsDir = path.join(this.root, 'snapshots');
    this.refsDir = path.join(this.root, 'refs');
  }

  blobPath(etag: string): string {
    return path.join(this.blobsDir, etag);
  }

  snapshotDir(commit: string): string {
    if (!COMMIT_RE.test(commit)) throw new HubError('ERR_ONESTEP_HUB_UNSAFE_PATH', `refusing commit ${JSON.stringify(commit)}: not a sha`);
    return path.join(this.snapshotsDir, commit);
  }

  /** The snapshot path of a repo file, checked to stay inside the snapshot folder. */
  snapshotPath(commit: string, repoPath: string): string {
    checkRepoPath(repoPath, 'the repository', this.repoId);
    const dir = this.snapshotDir(commit);
    const p = path.join(dir, ...repoPath.split('/'));
    if (!isInside(dir, p)) {
      throw new HubError('ERR_ONESTEP_HUB_UNSAFE_PATH', `refusing ${JSON.stringify(repoPath)}: it leaves the snapshot folder`, {
        repoId: this.repoId,
        file: repoPath,
      });
    }
    return p;
  }

  /** True when the snapshot holds the file (a symlink whose blob exists, or a copy). */
  hasSnapshotFile(commit: string, repoPath: string): boolean {
    try {
      return fs.statSync(this.snapshotPath(commit, repoPath)).isFile();
    } catch {
      return false;
    }
  }

  /** The commit refs/<revision> holds, or undefined. A revision that is itself a cached commit resolves to itself. */
  readRef(revision: string): string | undefined {
    if (COMMIT_RE.test(revision) && fs.existsSync(path.join(this.snapshotsDir, revision))) return revision;
    try {
      const c = fs.readFileSync(path.join(this.refsDir, ...revision.split('/')), 'utf8').trim();
      return COMMIT_RE.test(c) ? c : undefined;
    } catch {
      return undefined;
    }
  }

  /** Writes refs/<revision> = commit (atomically); nothing when the revision is the commit itself. */
  writeRef(revision: string, commit: string): void {
    if (revision === commit) return;
    const file = path.join(this.refsDir, ...revision.split('/'));
    if (!isInside(this.refsDir, file)) throw new HubError('ERR_ONESTEP_HUB_UNSAFE_PATH', `refusing revision ${JSON.stringify(revision)}`);
    try {
      if (fs.readFileSync(file, 'utf8') === commit) return;
    } catch {
      // absent: write it
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = tmpName(file);
    fs.writeFileSync(tmp, commit);
    fs.renameSync(tmp, file);
  }

  /** Every file of a cached snapshot (repo paths with '/'), skipping dangling links and linked folders. */
  listSnapshot(commit: string): string[] {
    const dir = this.snapshotDir(commit);
    const out: string[] = [];
    const walk = (abs: string, rel: string) => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(abs, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const a = path.join(abs, e.name);
        const r = rel === '' ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) walk(a, r);
        else if (e.isFile()) out.push(r);
        else if (e.isSymbolicLink()) {
          try {
            if (fs.statSync(a).isFile()) out.push(r);
          } catch {
            // dangling: the blob is gone
          }
        }
      }
    };
    walk(dir, '');
    return out.sort();
  }

  /**
   * Points snapshots/<commit>/<repoPath> at a blob: a relative symlink where the OS allows it,
   * else a copy. Replaces what was there atomically.
   */
  link(commit: string, repoPath: string, blob: string): void {
    const dst = this.snapshotPath(commit, repoPath);
    const snap = this.snapshotDir(commit);
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    // A folder in the way that is a link out of the snapshot would redirect the write.
    const realParent = fs.realpathSync(path.dirname(dst));
    const realSnap = fs.realpathSync(snap);
    if (realParent !== realSnap && !isInside(realSnap, realParent)) {
      throw new HubError('ERR_ONESTEP_HUB_UNSAFE_PATH', `refusing to write ${repoPath}: its folder leads out of the snapshot`, {
        repoId: this.repoId,
        file: repoPath,
      });
    }
    const tmp = tmpName(dst);
    try {
      fs.symlinkSync(path.relative(path.dirname(dst), blob), tmp, 'file');
    } catch {
      fs.copyFileSync(blob, tmp);
    }
    try {
      fs.renameSync(tmp, dst);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
  }
}
