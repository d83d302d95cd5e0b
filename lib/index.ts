// Public API of onestep.
export {
  AbortError,
  AddonLoadError,
  ArgumentError,
  ConfigError,
  DeviceError,
  DisposedError,
  FileNotFoundError,
  NativeError,
  OnestepError,
  SafetensorsError,
  TokenizerError,
  UnsupportedDtypeError,
  WeightError,
} from './errors';
export { type CudaInfo, type Info, type MathLibraryInfo, formatInfo, info } from './info';
export type { NativeTensor } from './native';
export type { GraphFallback } from './graph';
export {
  Checkpoint,
  type CheckpointOptions,
  SafetensorsFile,
  type SafetensorsHeader,
  type TensorInfo,
  type TensorToWrite,
  openCheckpoint,
  openSafetensors,
  parseSafetensorsBuffer,
  saveSafetensors,
  serializeSafetensors,
} from './safetensors';
export { CLIPTokenizer, type EncodeResult } from './tokenizer';
export { DEFAULT_NORMAL_VARIANT, type NormalVariant, type RngDType, type RngShape, type Seed, TorchGenerator, type TorchGeneratorOptions } from './rng';
export {
  type GenerateOptions,
  GeneratedImage,
  type InputImage,
  type LoadOptions,
  Pipeline,
  type ProgressEvent,
  loadPipeline,
  readPng,
} from './pipelines';
export { SCHEDULER_NAMES, type SchedulerName } from './schedulers';
export {
  type DownloadProgress,
  HubAbortError,
  HubError,
  type HubErrorCode,
  type ProgressBar,
  type ResolveOptions,
  type ResolvedModel,
  createProgressBar,
  resolveModel,
} from './hub';
export {
  type LoraAdapterReport,
  type LoraComponent,
  LoraError,
  type LoraReport,
  type LoraSpec,
} from './lora';
export {
  DEFAULT_LIMITS,
  type GenerationEvent,
  OnestepServer,
  type RequestEvent,
  type ServeOptions,
  ServerError,
  type ServerLimits,
  type ServerOptions,
  createServer,
  serve,
} from './server';
export { type SingleFileReport, detectSingleFile } from './single_file';
export { version } from './version';
