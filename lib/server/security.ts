// Who may call: the API key (compared in constant time), the Host header when listening on
// loopback (a DNS-rebinding guard), and browser origins (same origin, or those allowed by CORS).
import { createHash, timingSafeEqual } from 'crypto';
import type { IncomingMessage, ServerResponse } from 'http';
import { forbidden, unauthorized } from './errors';
import type { ResolvedOptions } from './options';

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

export function isLoopback(host: string): boolean {
  return LOOPBACK_NAMES.has(host.toLowerCase()) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The key a request presents: Authorization: Bearer, X-API-Key, or (WebSocket only) ?key=. */
function presentedKey(req: IncomingMessage, url: URL, allowQuery: boolean): string | undefined {
  const auth = req.headers.authorization;
  if (auth && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, '').trim();
  const x = req.headers['x-api-key'];
  if (typeof x === 'string') return x;
  return allowQuery ? (url.searchParams.get('key') ?? undefined) : undefined;
}

export function checkApiKey(o: ResolvedOptions, req: IncomingMessage, url: URL, allowQuery = false): void {
  if (o.apiKey === undefined) return;
  const key = presentedKey(req, url, allowQuery);
  if (key === undefined || !timingSafeEqual(digest(key), digest(o.apiKey))) throw unauthorized();
}

/** The hostname of a Host header ('[::1]:8787' -> '[::1]', 'a.b:80' -> 'a.b'). */
function hostName(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  return h.split(':')[0];
}

/**
 * On a loopback address only loopback names (and allowedHosts) are valid Host headers, so a web
 * page on a rebound DNS name cannot reach the server. Elsewhere allowedHosts, when given, is the list.
 */
export function checkHost(o: ResolvedOptions, req: IncomingMessage): void {
  const host = req.headers.host;
  if (!host) throw forbidden('a Host header is required');
  const name = hostName(host);
  if (o.allowedHosts.includes(name)) return;
  if (isLoopback(o.host)) {
    if (isLoopback(name) || name.endsWith('.localhost')) return;
    throw forbidden(`Host '${host}' is not allowed (the server listens on loopback; add it with --allow-host)`);
  }
  if (o.allowedHosts.length) throw forbidden(`Host '${host}' is not allowed`);
}

function originAllowedByCors(o: ResolvedOptions, origin: string): boolean {
  return o.corsOrigins.includes('*') || o.corsOrigins.includes(origin);
}

/** A browser request from another origin must be allowed by corsOrigins. */
export function checkOrigin(o: ResolvedOptions, req: IncomingMessage): void {
  const origin = req.headers.origin;
  if (origin === undefined) return; // not a browser, or a same-origin GET
  let sameOrigin = false;
  try {
    sameOrigin = new URL(origin).host === (req.headers.host ?? '').toLowerCase();
  } catch {
    sameOrigin = false;
  }
  if (!sameOrigin && !originAllowedByCors(o, origin)) throw forbidden(`requests from origin '${origin}' are not allowed (see --cors)`);
}

/** CORS response headers for an allowed cross-origin browser request. */
export function setCorsHeaders(o: ResolvedOptions, req: IncomingMessage, res: ServerResponse): void {
  const origin = req.headers.origin;
  if (origin === undefined || !originAllowedByCors(o, origin)) return;
  res.setHeader('Access-Control-Allow-Origin', o.corsOrigins.includes('*') ? '*' : origin);
  res.setHeader('Vary', 'Origin');
  res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
  res.setHeader('Access-Control-Allow-Headers', 'Content-Type, Authorization, X-API-Key, Accept');
  res.setHeader('Access-Control-Expose-Headers', 'X-Seed, X-Latency-Ms, X-Queue-Ms');
  res.setHeader('Access-Control-Max-Age', '600');
}
