// ESM entry: the CommonJS build's exports, named. test/package.test.js checks this list is complete.
import cjs from '../dist/index.js';

export const {
  AbortError,
  AddonLoadError,
  ArgumentError,
  Checkpoint,
  CLIPTokenizer,
  ConfigError,
  DEFAULT_NORMAL_VARIANT,
  DeviceError,
  GeneratedImage,
  FileNotFoundError,
  NativeError,
  OnestepError,
  Pipeline,
  SCHEDULER_NAMES,
  SafetensorsError,
  SafetensorsFile,
  TokenizerError,
  TorchGenerator,
  UnsupportedDtypeError,
  WeightError,
  formatInfo,
  info,
  loadPipeline,
  openCheckpoint,
  openSafetensors,
  parseSafetensorsBuffer,
  readPng,
  saveSafetensors,
  serializeSafetensors,
  version,
} = cjs;

export default cjs;
