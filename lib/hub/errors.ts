// Typed errors of the Hugging Face Hub client. Every failure is a HubError with a stable code.
import { OnestepError } from '../errors';

export type HubErrorCode =
  /** A repo id, revision or variant with characters the hub does not allow. */
  | 'ERR_ONESTEP_HUB_INVALID_ID'
  /** No such repository, revision or file (HTTP 404, or an index naming a shard the repo lacks). */
  | 'ERR_ONESTEP_HUB_NOT_FOUND'
  /** HTTP 401/403: a private or gated repository without a (valid) token. */
  | 'ERR_ONESTEP_HUB_UNAUTHORIZED'
  /** Connection refused/reset, timeouts, 5xx/429 after retries, too many redirects. */
  | 'ERR_ONESTEP_HUB_NETWORK'
  /** Another unexpected HTTP status. */
  | 'ERR_ONESTEP_HUB_HTTP'
  /** Offline mode (HF_HUB_OFFLINE=1 or { offline: true }) and something needed is not cached. */
  | 'ERR_ONESTEP_HUB_OFFLINE'
  /** A downloaded file whose size or sha256 does not match what the hub announced. */
  | 'ERR_ONESTEP_HUB_INTEGRITY'
  /** A file name, shard name, etag or commit that would escape the cache (`..`, absolute, `\`). */
  | 'ERR_ONESTEP_HUB_UNSAFE_PATH'
  /** The repository is not a usable diffusers repo: bad model_index.json / index / API answer. */
  | 'ERR_ONESTEP_HUB_INVALID_REPO'
  /** A component has weights, but none in safetensors (only .bin / .ckpt / ...), or only other variants. */
  | 'ERR_ONESTEP_HUB_NO_SAFETENSORS'
  /** The AbortSignal fired. */
  | 'ERR_ONESTEP_HUB_ABORTED';

export interface HubErrorDetails {
  repoId?: string;
  revision?: string;
  /** Path of the file inside the repository, where one is concerned. */
  file?: string;
  /** HTTP status, where one was received. */
  status?: number;
  cause?: unknown;
}

export class HubError extends OnestepError {
  declare readonly code: HubErrorCode;
  readonly repoId: string | undefined;
  readonly revision: string | undefined;
  readonly file: string | undefined;
  readonly status: number | undefined;
  constructor(code: HubErrorCode, message: string, details: HubErrorDetails = {}) {
    super(code, message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.repoId = details.repoId;
    this.revision = details.revision;
    this.file = details.file;
    this.status = details.status;
  }
}

/** Thrown when the caller's AbortSignal fires; `name` is 'AbortError' like DOM/Node abort errors. */
export class HubAbortError extends HubError {
  constructor(message = 'download aborted', details: HubErrorDetails = {}) {
    super('ERR_ONESTEP_HUB_ABORTED', message, details);
    this.name = 'AbortError';
  }
}
