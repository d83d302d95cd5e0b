export { LORA_FORMATS } from './formats';
export { type LoraAdapterReport, LoraError, type LoraReport, LoraSet, type LoraSpec, skippedWarning } from './lora_set';
export type { LoraComponent, LoraFormat, LoraModule } from './types';
export { parseLoraArg } from './spec';
