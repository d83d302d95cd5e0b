// Public API of onestep.
export {
  AddonLoadError,
  ArgumentError,
  FileNotFoundError,
  NativeError,
  OnestepError,
  SafetensorsError,
  TokenizerError,
  UnsupportedDtypeError,
} from './errors';
export { type CudaInfo, type Info, formatInfo, info } from './info';
export type { NativeTensor } from './native';
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
export { version } from './version';
