// Writing responses that never throw: a client that went away is simply not answered.
import type { ServerResponse } from 'http';
import { type ServerError, errorBody } from './errors';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}

export function sendBytes(res: ServerResponse, status: number, body: Buffer, headers: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Length': body.length, ...headers });
  res.end(body);
}

/** The error as `{ error: { code, message } }` (or the given shape) with its status and headers. */
export function sendError(res: ServerResponse, e: ServerError, shape: (e: ServerError) => unknown = errorBody): void {
  sendJson(res, e.status, shape(e), e.headers);
}
