import * as path from 'path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const version: string = (require(path.join(__dirname, '..', 'package.json')) as { version: string }).version;
