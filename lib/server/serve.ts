// serve(model): load a pipeline and serve it (the server owns the pipeline and disposes it on close).
import { type LoadOptions, loadPipeline } from '../pipelines';
import { type OnestepServer, createServer } from './server';
import * as net from 'net';
import { ArgumentError } from '../errors';
import { type ServerOptions, resolveSettings } from './options';

export type ServeOptions = Omit<ServerOptions, 'pipeline' | 'ownsPipeline'> & {
  load?: LoadOptions;
  /** called once the options are checked, as the model starts loading */
  onLoading?: () => void;
};

/** Whether host:port can be bound now (a free port, an address of this machine): a typed error if not. */
function probePort(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', (e: NodeJS.ErrnoException) =>
      reject(new ArgumentError(e.code === 'EADDRINUSE' ? `port ${port} on ${host} is in use (pick another with --port, or 0 for any free one)` : `cannot listen on ${host}:${port}: ${e.code ?? e.message}`)),
    );
    s.listen(port, host, () => s.close(() => resolve()));
  });
}

/**
 * Loads `model` (a diffusers folder or a hub repo id), starts listening, and returns the server.
 * Every option, and whether the port can be bound, is checked before the model loads.
 */
export async function serve(model: string, options: ServeOptions = {}): Promise<OnestepServer> {
  const settings = resolveSettings(options);
  if (settings.port !== 0) await probePort(settings.host, settings.port);
  options.onLoading?.();
  const pipeline = await loadPipeline(model, options.load);
  let server: OnestepServer;
  try {
    const { load: _load, onLoading: _onLoading, ...serverOptions } = options;
    server = createServer({ ...serverOptions, pipeline, ownsPipeline: true });
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
