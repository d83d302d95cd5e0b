// Public API of the CLIP tokenizer.
export {
  CLIPTokenizer,
  CLIP_PATTERN,
  type DecodeOptions,
  type EncodeResult,
  type TokenizerFromFilesOptions,
  type TokenizerOverrides,
  cleanUpTokenization,
} from './clip';
export { BYTE_DECODER, BYTE_ENCODER, byteLevelAlphabet, fromByteLevel, toByteLevel } from './bytes';
export { basicTokenize, cleanText, hfCleanText } from './clean';
export { DEFAULT_MODEL_MAX_LENGTH, MAX_MERGES, parseMerges, parseVocab } from './files';
