// CLIPTextModel / CLIPTextModelWithProjection config.json (Hugging Face transformers names).
import * as path from 'path';
import { actFromName, type Act } from '../../graph';
import { ConfigReader, type Json, readJsonFile } from '../config';

export interface CLIPTextConfig {
  hiddenSize: number;
  intermediateSize: number;
  heads: number;
  layers: number;
  maxPositions: number;
  vocabSize: number;
  act: Act;
  hiddenAct: string;
  eps: number;
  projectionDim: number;
  withProjection: boolean;
  eosTokenId: number;
}

export function readCLIPTextConfig(dir: string): CLIPTextConfig {
  const file = path.join(dir, 'config.json');
  return parseCLIPTextConfig(readJsonFile(file), file);
}

/** The same from a config object (`label` names it in errors: a file, or where it was derived from). */
export function parseCLIPTextConfig(json: Json, label: string): CLIPTextConfig {
  const c = new ConfigReader(json, label);
  const modelType = c.str('model_type', 'clip_text_model');
  c.require('model_type', modelType === 'clip_text_model', 'expected clip_text_model');
  const arch = c.strList('architectures', ['CLIPTextModel']);
  const known = ['CLIPTextModel', 'CLIPTextModelWithProjection'];
  c.require('architectures', arch.length === 1 && known.includes(arch[0]), `expected one of ${known.join(', ')}`);
  const hiddenAct = c.str('hidden_act', 'quick_gelu');
  const act = actFromName(hiddenAct);
  c.require('hidden_act', act !== undefined, 'supported: quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu, silu');
  const hiddenSize = c.int('hidden_size');
  const heads = c.int('num_attention_heads');
  c.require('num_attention_heads', heads > 0 && hiddenSize % heads === 0, 'hidden_size must be divisible by it');
  return {
    hiddenSize,
    intermediateSize: c.int('intermediate_size'),
    heads,
    layers: c.int('num_hidden_layers'),
    maxPositions: c.int('max_position_embeddings', 77),
    vocabSize: c.int('vocab_size'),
    act: act as Act,
    hiddenAct,
    eps: c.num('layer_norm_eps', 1e-5),
    projectionDim: c.int('projection_dim', hiddenSize),
    withProjection: arch[0] === 'CLIPTextModelWithProjection',
    eosTokenId: c.int('eos_token_id', 2),
  };
}
