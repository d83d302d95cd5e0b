// serve(model): load a pipeline and serve it (the server owns the pipeline and disposes it on close).
import { type LoadOptions, loadPipeline } from '../pipelines';
import { type OnestepServer, createServer } from './server';
import type { ServerOptions } from './options';

export type ServeOptions = Omit<ServerOptions, 'pipeline' | 'ownsPipeline'> & { load?: LoadOptions };

/** Loads `model` (a diffusers folder or a hub repo id), starts listening, and returns the server. */
export async function serve(model: string, options: ServeOptions = {}): Promise<OnestepServer> {
  const pipeline = await loadPipeline(model, options.load);
  let server: OnestepServer;
  try {
    server = createServer({ ...options, pipeline, ownsPipeline: true });
  } catch (e) {
    pipeline.dispose();
    throw e;
  }
  try {
    await server.listen();
  } catch (e) {
    await server.close();
    throw e;
  }
  return server;
}
