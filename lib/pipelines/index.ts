export { type GenerateOptions, Pipeline, generationSeed, type PipelineDefaults, type ProgressEvent } from './pipeline';
export { GeneratedImage, type InputImage, readPng } from './image';
export { type LoadOptions, PIPELINE_CLASSES, type PipelineClass, pipelineClassInfo, TAESD_REPOS, loadPipeline, resolveLoraFile, resolveModelFolder, setModelResolver } from './load';
export { type NoiseSource, RecordedNoise, TorchNoise } from './noise';
