export { DEFAULT_LIMITS, DEFAULT_PORT, type ServedPipeline, type ServerLimits, type ServerOptions } from './options';
export { ServerError } from './errors';
export { type GenerationEvent, type GenerationResult } from './service';
export { type ClientMessage, type ServerMessage } from './realtime';
export { OnestepServer, type RequestEvent, createServer } from './server';
export { type ServeOptions, serve } from './serve';
