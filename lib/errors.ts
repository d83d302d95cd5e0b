// Typed errors. Every error the package throws is an OnestepError with a stable `code`;
// native errors arrive as plain Errors with a `code` and are re-thrown through fromNative().

export class OnestepError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A file or folder that should exist does not. */
export class FileNotFoundError extends OnestepError {
  readonly path: string;
  constructor(path: string, what = 'file') {
    super('ERR_ONESTEP_FILE_NOT_FOUND', `${what} not found: ${path}`);
    this.path = path;
  }
}

/** A malformed or unsupported safetensors file; names the file and, where known, the tensor. */
export class SafetensorsError extends OnestepError {
  readonly file: string;
  readonly tensor: string | undefined;
  constructor(code: string, file: string, message: string, tensor?: string) {
    super(code, `${file}: ${tensor !== undefined ? `tensor '${tensor}': ` : ''}${message}`);
    this.file = file;
    this.tensor = tensor;
  }
}

/** A tensor stored in a dtype the engine does not read (only F32, F16, BF16, I64). */
export class UnsupportedDtypeError extends SafetensorsError {
  readonly dtype: string;
  constructor(file: string, tensor: string, dtype: string) {
    super('ERR_ONESTEP_SAFETENSORS_DTYPE', file, `unsupported dtype '${dtype}' (supported: F32, F16, BF16, I64)`, tensor);
    this.dtype = dtype;
  }
}

/** A checkpoint lacks a weight the model needs, or holds it in the wrong shape. */
export class WeightError extends OnestepError {
  readonly key: string;
  constructor(key: string, message: string) {
    super('ERR_ONESTEP_WEIGHTS', message);
    this.key = key;
  }
}

/** A model config (config.json) the engine cannot honour: unknown or unsupported fields. */
export class ConfigError extends OnestepError {
  constructor(message: string) {
    super('ERR_ONESTEP_CONFIG', message);
  }
}

/** Bad tokenizer files or input. */
export class TokenizerError extends OnestepError {
  constructor(message: string) {
    super('ERR_ONESTEP_TOKENIZER', message);
  }
}

/**
 * A generation was aborted through its AbortSignal (checked between steps), or by disposing its
 * pipeline. `cause` is the signal's reason (as fetch does), or the DisposedError.
 */
export class AbortError extends OnestepError {
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super('ERR_ONESTEP_ABORTED', message, options);
    this.name = 'AbortError';
  }
}

/** An object used after dispose() (a pipeline's generate, loadLoras, ...). */
export class DisposedError extends OnestepError {
  constructor(message: string) {
    super('ERR_ONESTEP_DISPOSED', message);
  }
}

/** device 'cuda' was asked for where CUDA cannot run; the message says why. */
export class DeviceError extends OnestepError {
  constructor(message: string) {
    super('ERR_ONESTEP_DEVICE', message);
  }
}

/** A function was called with arguments it cannot use. */
export class ArgumentError extends OnestepError {
  constructor(message: string) {
    super('ERR_ONESTEP_ARGUMENT', message);
  }
}

/** The native addon is missing or failed to load. */
export class AddonLoadError extends OnestepError {
  constructor(message: string, cause?: unknown) {
    super('ERR_ONESTEP_ADDON', message, { cause });
  }
}

/** An error raised by native code (code starts with ERR_ONESTEP_). */
export class NativeError extends OnestepError {}

/** Re-throws a native error as a NativeError with the same code and message; others pass through. */
export function fromNative(e: unknown): unknown {
  if (e instanceof OnestepError) return e;
  const code = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  if (e instanceof Error && typeof code === 'string') {
    if (code.startsWith('ERR_ONESTEP_')) return new NativeError(code, e.message, { cause: e });
  }
  return e;
}
