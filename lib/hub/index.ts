// Hugging Face Hub downloads: resolveModel() and its helpers (see docs/HUB.md).
export { repoFolderName } from './cache';
export { hubCacheDir, hubEndpoint } from './env';
export { HubAbortError, HubError, type HubErrorCode } from './errors';
export { type ProgressBar, createProgressBar, formatBytes } from './progress';
export { type DownloadProgress, type ResolveOptions, type ResolvedModel, resolveModel } from './resolve';
export { isRepoId } from './validate';
