// Server errors: an OnestepError with the HTTP status it answers with. Every error a request can
// meet becomes one of these (toServerError), so every bad request is a 4xx with a JSON body.
import { AbortError, OnestepError } from '../errors';

export class ServerError extends OnestepError {
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(code, message);
    this.status = status;
    this.headers = headers;
  }
}

export const badRequest = (message: string) => new ServerError(400, 'ERR_ONESTEP_BAD_REQUEST', message);
export const overLimit = (message: string) => new ServerError(400, 'ERR_ONESTEP_LIMIT', message);
export const badJson = (message: string) => new ServerError(400, 'ERR_ONESTEP_BAD_JSON', message);
export const tooLarge = (limit: number) => new ServerError(413, 'ERR_ONESTEP_BODY_TOO_LARGE', `the request body exceeds the limit of ${limit} bytes`);
export const unsupportedMediaType = (got: string | undefined) =>
  new ServerError(415, 'ERR_ONESTEP_MEDIA_TYPE', `send the body as JSON with 'Content-Type: application/json' (got ${got ? `'${got}'` : 'none'})`);
export const unauthorized = () => new ServerError(401, 'ERR_ONESTEP_UNAUTHORIZED', "a valid API key is required ('Authorization: Bearer KEY' or 'X-API-Key: KEY')", { 'WWW-Authenticate': 'Bearer' });
export const forbidden = (message: string) => new ServerError(403, 'ERR_ONESTEP_FORBIDDEN', message);
export const notFound = (path: string) => new ServerError(404, 'ERR_ONESTEP_NOT_FOUND', `no such endpoint: ${path}`);
export const methodNotAllowed = (method: string, allowed: string[]) =>
  new ServerError(405, 'ERR_ONESTEP_METHOD', `${method} is not allowed here (allowed: ${allowed.join(', ')})`, { Allow: allowed.join(', ') });
export const busy = (queued: number) => new ServerError(503, 'ERR_ONESTEP_BUSY', `the generation queue is full (${queued} waiting); retry shortly`, { 'Retry-After': '1' });
export const tooManySessions = (max: number) => new ServerError(503, 'ERR_ONESTEP_BUSY', `too many real-time sessions (the limit is ${max})`, { 'Retry-After': '5' });
export const shuttingDown = () => new ServerError(503, 'ERR_ONESTEP_SHUTTING_DOWN', 'the server is shutting down', { Connection: 'close' });

/** Errors of the pipeline that mean "your request was wrong" rather than "the server failed". */
const CLIENT_CODES = new Set(['ERR_ONESTEP_ARGUMENT', 'ERR_ONESTEP_TOKENIZER']);

/** Any thrown value as a ServerError: pipeline argument errors are 400, unknown failures a 500 without internals. */
export function toServerError(e: unknown): ServerError {
  if (e instanceof ServerError) return e;
  if (e instanceof AbortError) return new ServerError(499, e.code, e.message);
  if (e instanceof OnestepError) return new ServerError(CLIENT_CODES.has(e.code) ? 400 : 500, e.code, e.message);
  return new ServerError(500, 'ERR_ONESTEP_INTERNAL', 'internal server error');
}

/** The JSON error body every endpoint answers with. */
export function errorBody(e: ServerError): { error: { code: string; message: string } } {
  return { error: { code: e.code, message: e.message } };
}
