// A local stand-in for huggingface.co: the two endpoints the client uses, served from folders.
//   GET  /api/models/{org}/{name}/revision/{rev}   -> { id, sha, siblings: [{ rfilename }] }
//   HEAD|GET /{org}/{name}/resolve/{rev}/{path}     -> the file (X-Repo-Commit, ETag, Content-Length, Range)
// LFS files (*.safetensors by default) answer like the real hub: a 302 to a "CDN" (a second server
// on another port) carrying X-Linked-Etag ("<sha256>") and X-Linked-Size, while ETag is something
// else. Other files answer 200 with ETag = their git blob sha1. Errors carry X-Error-Code.
// Faults for tests: dropAfter (close the socket after N bytes, first attempt only), stallAfter (send
// N bytes then nothing, first attempt only), corrupt (wrong bytes, same length), slow (ms between
// 16 KiB chunks), fail (status codes to answer first, by repo path or 'api').
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

function walk(dir, rel = '') {
  const out = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, r));
    else out.push(r);
  }
  return out.sort();
}

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const gitSha1 = (buf) => crypto.createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');

class MockHub {
  constructor() {
    this.repos = new Map();
    /** Every request: { server: 'hub' | 'cdn', method, url, headers, status }. */
    this.requests = [];
    this.cdnBlobs = new Map();
    this.reset();
  }

  /** Forgets the request log and the faults. */
  reset() {
    this.requests.length = 0;
    /** Requests being answered now, and the most at once since the reset. */
    this.active = 0;
    this.maxActive = 0;
    /** Milliseconds to wait before answering each request (makes overlapping requests observable). */
    this.delay = 0;
    this.faults = { dropAfter: new Map(), stallAfter: new Map(), corrupt: new Set(), slow: new Map(), fail: new Map() };
  }

  /**
   * Serves `dir` as repo `id`. Options: token (private: needs 'Bearer <token>'), gated, commit,
   * branches ({ name: commit }), extraSiblings (names listed but not served), lfs(path) -> bool,
   * redirectLfs (default true).
   */
  addRepo(id, dir, options = {}) {
    const files = new Map();
    const lfs = options.lfs || ((p) => p.endsWith('.safetensors'));
    for (const rel of walk(dir)) {
      const data = fs.readFileSync(path.join(dir, rel));
      const entry = { data, sha256: sha256(data), gitSha1: gitSha1(data), lfs: lfs(rel) };
      files.set(rel, entry);
      if (entry.lfs) this.cdnBlobs.set(entry.sha256, entry);
    }
    const commit = options.commit || crypto.createHash('sha1').update(`commit:${id}`).digest('hex');
    const repo = {
      id,
      files,
      commit,
      branches: { main: commit, ...(options.branches || {}) },
      token: options.token,
      gated: !!options.gated,
      extraSiblings: options.extraSiblings || [],
      redirectLfs: options.redirectLfs !== false,
    };
    this.repos.set(id, repo);
    return repo;
  }

  async start() {
    const later = (fn) => (req, res) => {
      this.active++;
      this.maxActive = Math.max(this.maxActive, this.active);
      res.once('close', () => this.active--);
      if (this.delay > 0) setTimeout(() => fn(req, res), this.delay);
      else fn(req, res);
    };
    this.hub = http.createServer(later((req, res) => this._hub(req, res)));
    this.cdn = http.createServer(later((req, res) => this._cdn(req, res)));
    await Promise.all([this.hub, this.cdn].map((s) => new Promise((r) => s.listen(0, '127.0.0.1', r))));
    this.endpoint = `http://127.0.0.1:${this.hub.address().port}`;
    this.cdnOrigin = `http://127.0.0.1:${this.cdn.address().port}`;
    return this;
  }

  async close() {
    for (const s of [this.hub, this.cdn]) {
      if (!s) continue;
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  }

  /** Requests of one server, optionally only those whose URL matches `re`. */
  log(server, re) {
    return this.requests.filter((r) => r.server === server && (!re || re.test(r.url)));
  }

  _record(server, req, res) {
    const rec = { server, method: req.method, url: req.url, headers: { ...req.headers }, status: undefined };
    this.requests.push(rec);
    const writeHead = res.writeHead.bind(res);
    res.writeHead = (status, ...rest) => {
      rec.status = status;
      return writeHead(status, ...rest);
    };
    return rec;
  }

  _error(res, status, code, message) {
    const body = JSON.stringify({ error: message });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-error-code': code, 'x-error-message': message });
    res.end(body);
  }

  _hub(req, res) {
    this._record('hub', req, res);
    const url = new URL(req.url, this.endpoint);
    const parts = url.pathname.split('/').slice(1);
    let repoId;
    let rev;
    let file;
    let api = false;
    if (parts[0] === 'api' && parts[1] === 'models' && parts[4] === 'revision' && parts.length === 6) {
      api = true;
      repoId = `${parts[2]}/${parts[3]}`;
      rev = decodeURIComponent(parts[5]);
    } else if (parts[2] === 'resolve' && parts.length >= 5) {
      repoId = `${parts[0]}/${parts[1]}`;
      rev = decodeURIComponent(parts[3]);
      file = parts.slice(4).map(decodeURIComponent).join('/');
    } else {
      this._error(res, 404, 'NotFound', 'not an endpoint of this mock');
      return;
    }
    const failing = this.faults.fail.get(api ? 'api' : file);
    if (failing && failing.length > 0) {
      this._error(res, failing.shift(), 'Transient', 'injected failure');
      return;
    }
    const repo = this.repos.get(repoId);
    if (!repo) {
      this._error(res, 404, 'RepoNotFound', 'Repository not found');
      return;
    }
    if (repo.token !== undefined && req.headers.authorization !== `Bearer ${repo.token}`) {
      if (req.headers.authorization) this._error(res, 401, 'RepoNotFound', 'Invalid credentials in Authorization header');
      else this._error(res, 401, 'RepoNotFound', 'Repository not found');
      return;
    }
    if (repo.gated) {
      this._error(res, 403, 'GatedRepo', `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it.`);
      return;
    }
    const commit = repo.branches[rev] || (rev === repo.commit ? rev : undefined);
    if (!commit) {
      this._error(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      return;
    }
    if (api) {
      const siblings = [...repo.files.keys(), ...repo.extraSiblings].map((rfilename) => ({ rfilename }));
      const body = JSON.stringify({ id: repoId, modelId: repoId, sha: commit, private: repo.token !== undefined, siblings });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const entry = repo.files.get(file);
    if (!entry) {
      this._error(res, 404, 'EntryNotFound', `${file} does not exist on "${rev}"`);
      return;
    }
    if (entry.lfs && repo.redirectLfs) {
      const location = `${this.cdnOrigin}/blobs/${entry.sha256}?file=${encodeURIComponent(file)}&sig=x`;
      res.writeHead(302, {
        location,
        'x-repo-commit': commit,
        'x-linked-etag': `"${entry.sha256}"`,
        'x-linked-size': String(entry.data.length),
        etag: `"${gitSha1(Buffer.from(entry.sha256))}"`, // the pointer's etag, not the content's
        'content-length': '0',
      });
      res.end();
      return;
    }
    this._serve(req, res, entry.data, file, { 'x-repo-commit': commit, etag: `"${entry.lfs ? entry.sha256 : entry.gitSha1}"` });
  }

  _cdn(req, res) {
    this._record('cdn', req, res);
    const url = new URL(req.url, this.cdnOrigin);
    const m = /^\/blobs\/([0-9a-f]{64})$/.exec(url.pathname);
    const entry = m && this.cdnBlobs.get(m[1]);
    if (!entry) {
      res.writeHead(404);
      res.end();
      return;
    }
    const file = url.searchParams.get('file');
    const failing = this.faults.fail.get(file);
    if (failing && failing.length > 0) {
      res.writeHead(failing.shift());
      res.end();
      return;
    }
    this._serve(req, res, entry.data, file, { etag: `"${entry.sha256}"` });
  }

  _serve(req, res, data, file, headers) {
    let start = 0;
    let end = data.length - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range || '');
    if (range) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(end, Number(range[2]));
      if (start >= data.length) {
        res.writeHead(416, { 'content-range': `bytes */${data.length}` });
        res.end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${data.length}`;
    }
    let body = data.subarray(start, end + 1);
    if (this.faults.corrupt.has(file)) body = Buffer.from(body.map((b) => b ^ 0x5a));
    res.writeHead(status, { ...headers, 'accept-ranges': 'bytes', 'content-length': String(body.length), 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const drop = req.method === 'GET' ? this.faults.dropAfter.get(file) : undefined;
    if (drop !== undefined) {
      this.faults.dropAfter.delete(file); // first attempt only
      res.write(body.subarray(0, drop), () => setTimeout(() => res.socket && res.socket.destroy(), 10));
      return;
    }
    const stall = req.method === 'GET' ? this.faults.stallAfter.get(file) : undefined;
    if (stall !== undefined) {
      this.faults.stallAfter.delete(file); // first attempt only: send some bytes, then nothing
      res.write(body.subarray(0, stall));
      return;
    }
    const slow = this.faults.slow.get(file);
    if (slow !== undefined) {
      let off = 0;
      const next = () => {
        if (res.destroyed || res.writableEnded) return;
        if (off >= body.length) {
          res.end();
          return;
        }
        res.write(body.subarray(off, off + 16384));
        off += 16384;
        setTimeout(next, slow);
      };
      next();
      return;
    }
    res.end(body);
  }
}

/** Runs fn with environment variables set ('' deletes one), restoring them afterwards. */
async function withEnv(vars, fn) {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) if (v === '') delete process.env[k];
  else process.env[k] = v;
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

module.exports = { MockHub, sha256, gitSha1, walk, withEnv };
