// The registry of fixture kinds the golden runner knows. A new kind is one module and one line here.
import type { GoldenKind } from '../types';
import { networkKind } from './network';
import { rngKind } from './rng';
import { schedulerKind } from './scheduler';
import { tokenizerKind } from './tokenizer';

export const kinds: GoldenKind[] = [tokenizerKind, rngKind, schedulerKind, networkKind];
