// CLIPTextModel and CLIPTextModelWithProjection (transformers' module tree and key names):
// token + position embeddings, pre-LN transformer layers with causal self-attention, final
// LayerNorm, pooled output at the EOS token, optional text projection.
import { ArgumentError } from '../../errors';
import type { CompiledGraph, Value } from '../../graph';
import { type Description, GraphCache } from '../../graph/describe';
import { type NativeTensor, addon, callNative } from '../../native';
import { Checkpoint, type TensorSource } from '../../safetensors';
import type { Json } from '../config';
import { type ModelLoadOptions, type ModelTarget, Weights } from '../weights';
import { type CLIPTextConfig, parseCLIPTextConfig, readCLIPTextConfig } from './config';

/**
 * Outputs a graph can produce:
 *  last_hidden_state     final_layer_norm(output of the last layer)                 [B, L, H]
 *  penultimate           hidden_states[-2]: output of the second-to-last layer      [B, L, H]
 *  penultimate_final_ln  final_layer_norm(hidden_states[-2]) (clip_skip = 1)         [B, L, H]
 *  pooled                last_hidden_state at the EOS token                         [B, H]
 *  text_embeds           pooled @ text_projection^T (WithProjection only)           [B, P]
 */
export type TextEncoderOutput = 'last_hidden_state' | 'penultimate' | 'penultimate_final_ln' | 'pooled' | 'text_embeds';

export class CLIPTextModel {
  private readonly graphs = new GraphCache<CompiledGraph>('text encoder');

  constructor(
    readonly config: CLIPTextConfig,
    private readonly w: Weights,
  ) {}

  static fromPretrained(dir: string, options: ModelLoadOptions = {}): CLIPTextModel {
    const config = readCLIPTextConfig(dir);
    const checkpoint = Checkpoint.open(dir, { variant: options.variant, weightNames: ['model', 'pytorch_model'] });
    const w = Weights.of(checkpoint, `text encoder ${dir}`, options);
    const model = new CLIPTextModel(config, w);
    model.checkWeights();
    return model;
  }

  /** From a config object and any tensor source under transformers names (a single-file checkpoint). */
  static fromSource(config: Json, source: TensorSource, label: string, target: ModelTarget = {}): CLIPTextModel {
    const model = new CLIPTextModel(parseCLIPTextConfig(config, label), Weights.of(source, `text encoder ${label}`, target));
    model.checkWeights();
    return model;
  }

  /** Reads every weight once so a bad checkpoint fails at load, not at the first prompt. */
  private checkWeights(): void {
    const c = this.config;
    const tm = this.w.scope('text_model');
    tm.matrix('embeddings.token_embedding.weight', [c.vocabSize, c.hiddenSize]);
    tm.matrix('embeddings.position_embedding.weight', [c.maxPositions, c.hiddenSize]);
    for (let i = 0; i < c.layers; i++) this.layerWeights(i);
    tm.f32('final_layer_norm.weight', [c.hiddenSize]);
    tm.f32('final_layer_norm.bias', [c.hiddenSize]);
    if (c.withProjection) this.w.matrix('text_projection.weight', [c.projectionDim, c.hiddenSize]);
  }

  private layerWeights(i: number) {
    const c = this.config;
    const H = c.hiddenSize;
    const l = this.w.scope(`text_model.encoder.layers.${i}`);
    const lin = (name: string, n: number, k: number) => ({ w: l.matrix(`${name}.weight`, [n, k]), b: l.f32(`${name}.bias`, [n]) });
    const ln = (name: string) => ({ g: l.f32(`${name}.weight`, [H]), b: l.f32(`${name}.bias`, [H]) });
    return {
      ln1: ln('layer_norm1'),
      q: lin('self_attn.q_proj', H, H),
      k: lin('self_attn.k_proj', H, H),
      v: lin('self_attn.v_proj', H, H),
      o: lin('self_attn.out_proj', H, H),
      ln2: ln('layer_norm2'),
      fc1: lin('mlp.fc1', c.intermediateSize, H),
      fc2: lin('mlp.fc2', H, c.intermediateSize),
    };
  }

  /** Builds the full graph once (with recording weights: lists the weights). */
  buildGraphs(): void {
    const outs: TextEncoderOutput[] = ['last_hidden_state', 'penultimate', 'pooled'];
    if (this.config.withProjection) outs.push('text_embeds');
    this.graph(1, this.config.maxPositions, outs);
  }

  /** The graph for a batch of `batch` sequences of `length` tokens producing `outputs`. */
  graph(batch: number, length: number, outputs: TextEncoderOutput[]): CompiledGraph {
    return this.graphs.get(this.graphKey(batch, length, outputs), () => this.describe(batch, length, outputs));
  }

  /** graph(), described with the event loop running between layers. */
  graphYielding(batch: number, length: number, outputs: TextEncoderOutput[]): Promise<CompiledGraph> {
    return this.graphs.getYielding(this.graphKey(batch, length, outputs), () => this.describe(batch, length, outputs));
  }

  private graphKey(batch: number, length: number, outputs: TextEncoderOutput[]): string {
    const c = this.config;
    if (length < 1 || length > c.maxPositions) throw new ArgumentError(`sequence length ${length} outside 1..${c.maxPositions}`);
    if (outputs.includes('text_embeds') && !c.withProjection) throw new ArgumentError('text_embeds needs a CLIPTextModelWithProjection');
    return `${batch}x${length}:${[...outputs].sort().join(',')}`;
  }

  private *describe(batch: number, length: number, outputs: TextEncoderOutput[]): Description<CompiledGraph> {
    const c = this.config;
    const g = this.w.builder();
    const H = c.hiddenSize;
    const tm = this.w.scope('text_model');
    const ids = g.input('input_ids', [batch, length], 'I64');
    const positions = callNative(() =>
      addon().tensorFromBytes('I64', [length], BigInt64Array.from({ length }, (_, i) => BigInt(i))),
    );
    const tok = g.embedding(ids, tm.matrix('embeddings.token_embedding.weight', [c.vocabSize, H]));
    const pos = g.embedding(g.constant(positions, 'position_ids'), tm.matrix('embeddings.position_embedding.weight', [c.maxPositions, H]));
    let x = g.add(tok, pos);

    const needLast = outputs.some((o) => o === 'last_hidden_state' || o === 'pooled' || o === 'text_embeds');
    const layersToRun = needLast ? c.layers : c.layers - 1;
    const finalLn = (v: Value) => g.layerNorm(v, tm.f32('final_layer_norm.weight', [H]), tm.f32('final_layer_norm.bias', [H]), c.eps);
    const headDim = H / c.heads;
    const emitPenultimate = (v: Value) => {
      if (outputs.includes('penultimate')) g.output('penultimate', v);
      if (outputs.includes('penultimate_final_ln')) g.output('penultimate_final_ln', finalLn(v));
    };
    for (let i = 0; i < layersToRun; i++) {
      yield;
      if (i === c.layers - 1) emitPenultimate(x);
      const L = this.layerWeights(i);
      const h = g.layerNorm(x, L.ln1.g, L.ln1.b, c.eps);
      const q = g.linear(h, L.q.w, L.q.b);
      const k = g.linear(h, L.k.w, L.k.b);
      const v = g.linear(h, L.v.w, L.v.b);
      const a = g.attention(q, k, v, c.heads, 1 / Math.sqrt(headDim), true);
      x = g.linear(a, L.o.w, L.o.b, { residual: x });
      const h2 = g.layerNorm(x, L.ln2.g, L.ln2.b, c.eps);
      const f = g.linear(h2, L.fc1.w, L.fc1.b, { act: c.act });
      x = g.linear(f, L.fc2.w, L.fc2.b, { residual: x });
    }
    if (!needLast) emitPenultimate(x); // hidden_states[-2]: after all but the last layer
    if (needLast) {
      const last = finalLn(x);
      if (outputs.includes('last_hidden_state')) g.output('last_hidden_state', last);
      if (outputs.includes('pooled') || outputs.includes('text_embeds')) {
        const pooled = g.selectRows(last, g.input('eos_index', [batch], 'I64'));
        if (outputs.includes('pooled')) g.output('pooled', pooled);
        if (outputs.includes('text_embeds')) g.output('text_embeds', g.linear(pooled, this.w.matrix('text_projection.weight', [c.projectionDim, H])));
      }
    }
    return g.build();
  }

  /**
   * Position of the pooled token: transformers takes argmax(input_ids) when the config's
   * eos_token_id is the legacy 2 (all SD configs), else the first eos_token_id.
   */
  eosIndex(ids: ArrayLike<number>): number {
    if (this.config.eosTokenId === 2) {
      let best = 0;
      for (let i = 1; i < ids.length; i++) if (ids[i] > ids[best]) best = i;
      return best;
    }
    for (let i = 0; i < ids.length; i++) if (ids[i] === this.config.eosTokenId) return i;
    return ids.length - 1;
  }

  /** Runs the encoder on token ids (one row per prompt, all the same length). */
  async encode(ids: number[][], outputs: TextEncoderOutput[]): Promise<Record<string, NativeTensor>> {
    if (ids.length === 0) throw new ArgumentError('encode: no sequences');
    const L = ids[0].length;
    if (ids.some((r) => r.length !== L)) throw new ArgumentError('encode: all sequences must have the same length');
    for (const row of ids)
      for (const id of row)
        if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) throw new ArgumentError(`encode: token id ${id} outside [0, ${this.config.vocabSize})`);
    const graph = await this.graphYielding(ids.length, L, outputs);
    const inputs: Record<string, BigInt64Array> = { input_ids: BigInt64Array.from(ids.flat().map(BigInt)) };
    if (graph.inputs.some((i) => i.name === 'eos_index')) inputs.eos_index = BigInt64Array.from(ids.map((r) => BigInt(this.eosIndex(r))));
    const out = await graph.run(inputs);
    delete out.profile;
    return out;
  }

  /** Checkpoint keys this model does not use (for load reports). */
  unusedWeights(): string[] {
    return this.w.unused().filter((k) => k !== 'text_model.embeddings.position_ids');
  }

  /** The model's weights (LoRA fusion replaces some of them). */
  get weights(): Weights {
    return this.w;
  }

  /** Drops the compiled graphs (after the weights changed); they are rebuilt on next use. */
  resetGraphs(): void {
    this.graphs.clear();
  }

  dispose(): void {
    this.graphs.close();
    this.w.close();
  }
}
