// What a model's weights are read from: a checkpoint (a file or shards, names as stored) or a
// renamed view of one (a single-file checkpoint in the original layout presented under diffusers
// names). Weights only ever asks these questions.
import type { NativeTensor } from '../native';

export interface TensorMeta {
  /** safetensors dtype name */
  dtype: string;
  shape: number[];
}

export interface TensorSource {
  /** where the tensors come from, for messages */
  readonly source: string;
  names(): string[];
  has(name: string): boolean;
  /** dtype and shape (throws a SafetensorsError for a missing name) */
  info(name: string): TensorMeta;
  /** the tensor (zero-copy where the layout allows) */
  tensor(name: string): NativeTensor;
  close(): void;
}
