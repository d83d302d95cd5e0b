export {
  DEFAULT_NORMAL_VARIANT,
  DEFAULT_TORCH_SEED,
  MAX_RNG_NUMEL,
  type NativeTorchGenerator,
  type NormalVariant,
  type RngDType,
  type RngShape,
  type Seed,
  TorchGenerator,
  type TorchGeneratorOptions,
  checkSeed,
  rngNumel,
} from './generator';
