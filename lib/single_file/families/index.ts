// The single-file families: one module each; the first whose detect() accepts a header owns it.
import type { SingleFileFamily } from '../types';
import { sd1 } from './sd1';
import { sd2, sd2Sgm } from './sd2';
import { sdxl } from './sdxl';

export const FAMILIES: readonly SingleFileFamily[] = [sdxl, sd1, sd2, sd2Sgm];
