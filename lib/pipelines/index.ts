export { type GenerateOptions, Pipeline, type PipelineDefaults, type ProgressEvent } from './pipeline';
export { GeneratedImage, type InputImage, readPng } from './image';
export { type LoadOptions, TAESD_REPOS, loadPipeline, resolveLoraFile, resolveModelFolder, setModelResolver } from './load';
export { type NoiseSource, RecordedNoise, TorchNoise } from './noise';
