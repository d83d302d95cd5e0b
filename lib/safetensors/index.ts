export { Checkpoint, type CheckpointOptions, openCheckpoint } from './checkpoint';
export {
  SAFETENSORS_DTYPE_SIZES,
  SUPPORTED_DTYPES,
  type SupportedDType,
  bf16BitsToFloat,
  decodeToFloat32,
  encodeFromFloat32,
  floatToBf16Bits,
  floatToHalfBits,
  halfBitsToFloat,
} from './dtypes';
export { SafetensorsFile, openSafetensors } from './file';
export type { TensorMeta, TensorSource } from './source';
export { MAX_HEADER_BYTES, type SafetensorsHeader, type TensorInfo, parseSafetensorsBuffer } from './header';
export { type StreamedTensor, type TensorToWrite, saveSafetensors, saveSafetensorsStreaming, serializeSafetensors } from './writer';
