// ESM entry: the CommonJS build's exports, named. test/package.test.js checks this list is complete.
import cjs from '../dist/index.js';

export const {
  AddonLoadError,
  ArgumentError,
  Checkpoint,
  CLIPTokenizer,
  FileNotFoundError,
  NativeError,
  OnestepError,
  SafetensorsError,
  SafetensorsFile,
  TokenizerError,
  UnsupportedDtypeError,
  formatInfo,
  info,
  openCheckpoint,
  openSafetensors,
  parseSafetensorsBuffer,
  saveSafetensors,
  serializeSafetensors,
  version,
} = cjs;

export default cjs;
