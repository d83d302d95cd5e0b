// Text conditioning as the diffusers pipelines compute it: SD (one CLIP text encoder, its last
// hidden state) and SDXL (two encoders' penultimate hidden states side by side, plus the second
// encoder's projected pooled output), negatives for classifier-free guidance batched first.
import { ArgumentError } from '../errors';
import { yieldToLoop } from '../graph/describe';
import type { CLIPTextModel } from '../models/clip/text_encoder';
import type { CLIPTokenizer } from '../tokenizer';

export interface Conditioning {
  /** [rows, 77, width]: [negatives; prompts] under guidance, else prompts */
  context: Float32Array;
  rows: number;
  length: number;
  width: number;
  /** SDXL: [rows, pooled width] */
  textEmbeds?: Float32Array;
  /** the token ids fed to each encoder, for traces */
  ids: Record<string, number[][]>;
  /** texts longer than the encoders' window (cut as diffusers does: the first modelMaxLength - 2 tokens kept) */
  truncated: Truncation[];
}

export interface Truncation {
  role: 'prompt' | 'negative prompt';
  /** index in the prompt list */
  index: number;
  text: string;
  /** prompt tokens (without BOS / EOS) and how many the encoder reads */
  tokens: number;
  kept: number;
}

/** The texts a tokenizer cuts, by role (the longest count when several tokenizers read the same text). */
function truncations(tok: CLIPTokenizer, texts: string[], role: Truncation['role'], into: Truncation[]): void {
  texts.forEach((text, index) => {
    const r = tok.encodeWithInfo(text);
    if (!r.truncated) return;
    const t = { role, index, text, tokens: r.numTokens, kept: tok.modelMaxLength - 2 };
    const same = into.find((x) => x.role === role && x.index === index);
    if (!same) into.push(t);
    else if (t.tokens - t.kept > same.tokens - same.kept) Object.assign(same, t);
  });
}

export interface TextConditioner {
  readonly width: number;
  /**
   * `negatives` present = classifier-free guidance. `perPrompt` images per prompt. zeroNegatives:
   * all-zero negative conditioning (SDXL's force_zeros_for_empty_prompt when no negative prompt
   * was given).
   */
  encode(prompts: string[], negatives: string[] | undefined, perPrompt: number, zeroNegatives?: boolean): Promise<Conditioning>;
  /** the text encoders by their pipeline component names */
  encoders(): Record<string, CLIPTextModel>;
  dispose(): void;
}

async function embed(enc: CLIPTextModel, tok: CLIPTokenizer, texts: string[], output: 'last_hidden_state' | 'penultimate' | 'penultimate_final_ln', pooled: boolean) {
  const ids = texts.map((t) => tok.encode(t));
  await yieldToLoop();
  const outs: ('last_hidden_state' | 'penultimate' | 'penultimate_final_ln' | 'text_embeds')[] = [output];
  if (pooled) outs.push('text_embeds');
  const r = await enc.encode(ids, outs);
  const hidden = r[output].toFloat32();
  r[output].dispose();
  let pool: Float32Array | undefined;
  if (pooled) {
    pool = r.text_embeds.toFloat32();
    r.text_embeds.dispose();
  }
  return { ids, hidden, pooled: pool };
}

/** Repeats each row `times` times (num_images_per_prompt). */
function repeatRows(x: Float32Array, rows: number, times: number): Float32Array {
  if (times === 1) return x;
  const n = x.length / rows;
  const out = new Float32Array(x.length * times);
  for (let r = 0; r < rows; r++) for (let k = 0; k < times; k++) out.set(x.subarray(r * n, (r + 1) * n), (r * times + k) * n);
  return out;
}

function concatRows(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export class SDConditioner implements TextConditioner {
  constructor(
    private readonly tokenizer: CLIPTokenizer,
    private readonly encoder: CLIPTextModel,
    private readonly clipSkip = 0,
  ) {
    if (clipSkip !== 0 && clipSkip !== 1) throw new ArgumentError('clipSkip may be 0 or 1');
  }

  get width(): number {
    return this.encoder.config.hiddenSize;
  }

  encoders(): Record<string, CLIPTextModel> {
    return { text_encoder: this.encoder };
  }

  async encode(prompts: string[], negatives: string[] | undefined, perPrompt: number): Promise<Conditioning> {
    const out = this.clipSkip ? 'penultimate_final_ln' : 'last_hidden_state';
    const L = this.tokenizer.modelMaxLength;
    const pos = await embed(this.encoder, this.tokenizer, prompts, out, false);
    let context = repeatRows(pos.hidden, prompts.length, perPrompt);
    const ids: Record<string, number[][]> = { input_ids: pos.ids };
    if (negatives) {
      const neg = await embed(this.encoder, this.tokenizer, negatives, out, false);
      ids.negative_input_ids = neg.ids;
      context = concatRows(repeatRows(neg.hidden, negatives.length, perPrompt), context);
    }
    const rows = prompts.length * perPrompt * (negatives ? 2 : 1);
    const truncated: Truncation[] = [];
    truncations(this.tokenizer, prompts, 'prompt', truncated);
    if (negatives) truncations(this.tokenizer, negatives, 'negative prompt', truncated);
    return { context, rows, length: L, width: this.width, ids, truncated };
  }

  dispose(): void {
    this.encoder.dispose();
  }
}

export class SDXLConditioner implements TextConditioner {
  constructor(
    private readonly tok1: CLIPTokenizer,
    private readonly enc1: CLIPTextModel,
    private readonly tok2: CLIPTokenizer,
    private readonly enc2: CLIPTextModel,
  ) {}

  get width(): number {
    return this.enc1.config.hiddenSize + this.enc2.config.hiddenSize;
  }

  encoders(): Record<string, CLIPTextModel> {
    return { text_encoder: this.enc1, text_encoder_2: this.enc2 };
  }

  get pooledWidth(): number {
    return this.enc2.config.projectionDim;
  }

  private async both(texts: string[]) {
    const a = await embed(this.enc1, this.tok1, texts, 'penultimate', false);
    const b = await embed(this.enc2, this.tok2, texts, 'penultimate', true);
    const L = this.tok1.modelMaxLength;
    const w1 = this.enc1.config.hiddenSize;
    const w2 = this.enc2.config.hiddenSize;
    const ctx = new Float32Array(texts.length * L * (w1 + w2));
    for (let r = 0; r < texts.length * L; r++) {
      ctx.set(a.hidden.subarray(r * w1, (r + 1) * w1), r * (w1 + w2));
      ctx.set(b.hidden.subarray(r * w2, (r + 1) * w2), r * (w1 + w2) + w1);
    }
    return { ctx, pooled: b.pooled as Float32Array, ids1: a.ids, ids2: b.ids };
  }

  async encode(prompts: string[], negatives: string[] | undefined, perPrompt: number, zeroNegatives = false): Promise<Conditioning> {
    const pos = await this.both(prompts);
    let context = repeatRows(pos.ctx, prompts.length, perPrompt);
    let textEmbeds = repeatRows(pos.pooled, prompts.length, perPrompt);
    const ids: Record<string, number[][]> = { input_ids: pos.ids1, input_ids_2: pos.ids2 };
    if (negatives) {
      const zero = zeroNegatives;
      let negCtx: Float32Array;
      let negPooled: Float32Array;
      if (zero) {
        negCtx = new Float32Array(context.length);
        negPooled = new Float32Array(textEmbeds.length);
      } else {
        const neg = await this.both(negatives);
        ids.negative_input_ids = neg.ids1;
        ids.negative_input_ids_2 = neg.ids2;
        negCtx = repeatRows(neg.ctx, negatives.length, perPrompt);
        negPooled = repeatRows(neg.pooled, negatives.length, perPrompt);
      }
      context = concatRows(negCtx, context);
      textEmbeds = concatRows(negPooled, textEmbeds);
    }
    const rows = prompts.length * perPrompt * (negatives ? 2 : 1);
    const truncated: Truncation[] = [];
    for (const tok of [this.tok1, this.tok2]) {
      truncations(tok, prompts, 'prompt', truncated);
      if (negatives && !zeroNegatives) truncations(tok, negatives, 'negative prompt', truncated);
    }
    return { context, rows, length: this.tok1.modelMaxLength, width: this.width, textEmbeds, ids, truncated };
  }

  dispose(): void {
    this.enc1.dispose();
    this.enc2.dispose();
  }
}
