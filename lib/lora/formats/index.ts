// The LoRA key styles, tried in order; a new style is one converter module and one line here.
import type { LoraFormat } from '../types';
import { diffusersFormat } from './diffusers';
import { kohyaFormat } from './kohya';

export const LORA_FORMATS: readonly LoraFormat[] = [kohyaFormat, diffusersFormat];
