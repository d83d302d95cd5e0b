// npx onestep <command>: info now; generate, bench and serve arrive with their issues.
import { formatInfo, info } from './info';
import { version } from './version';

const USAGE = `usage: onestep <command> [options]

commands:
  info [--json]      version, backends compiled and usable, CUDA devices or why CUDA is unusable
  golden PATH...     run golden fixtures (same as npm run golden)
  version            print the version`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'info': {
      const i = info();
      console.log(rest.includes('--json') ? JSON.stringify(i, null, 2) : formatInfo(i));
      return 0;
    }
    case 'golden': {
      const { main: golden } = await import('./golden/cli');
      return golden(rest);
    }
    case 'version':
    case '--version':
    case '-v':
      console.log(version);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return cmd === undefined ? 1 : 0;
    default:
      console.error(`onestep: unknown command '${cmd}'\n\n${USAGE}`);
      return 2;
  }
}
