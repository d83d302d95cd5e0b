// Images in and out: NCHW float [0, 1] <-> 8-bit RGB, PNG encoding and decoding (pngjs).
import * as fs from 'fs';
import { PNG } from 'pngjs';
import { ArgumentError, FileNotFoundError } from '../errors';
import { type GenerationParams, metadataChunks } from './metadata';
import { pngChunks, withTextChunks } from './png';
import { resizeLanczos } from './resize';

export interface PngOptions {
  /** write what made the image as text chunks (`parameters` as the web UIs read it, and `onestep` JSON); default true */
  metadata?: boolean;
}

/** One generated image: 8-bit RGB (row-major, 3 bytes per pixel), and what made it. */
export class GeneratedImage {
  constructor(
    readonly width: number,
    readonly height: number,
    /** RGB bytes, width * height * 3 */
    readonly rgb: Uint8Array,
    /** the final latents [4, h, w] (NCHW, unscaled) when generate() was asked for them */
    readonly latents?: Float32Array,
    /** the generation's parameters: seed (the one drawn when none was given), sampler, size, ... */
    readonly params?: GenerationParams,
    /** what the generation warned about (e.g. prompt tokens beyond the text encoder's window) */
    readonly warnings: readonly string[] = [],
  ) {}

  /** The seed that reproduces this image (decimal), if it was drawn from a seed. */
  get seed(): string | undefined {
    return this.params?.seed;
  }

  /** PNG file contents, with the generation parameters as text chunks unless `metadata: false`. */
  png(options: PngOptions = {}): Buffer {
    const png = new PNG({ width: this.width, height: this.height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
    png.data = Buffer.from(this.rgb.buffer, this.rgb.byteOffset, this.rgb.byteLength);
    const bytes = PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false });
    return options.metadata !== false && this.params ? withTextChunks(bytes, metadataChunks(this.params)) : bytes;
  }

  async save(path: string, options: PngOptions = {}): Promise<void> {
    await fs.promises.writeFile(path, this.png(options));
  }
}

export interface InputImage {
  width: number;
  height: number;
  /** RGB (3 bytes per pixel) or RGBA (4) */
  data?: Uint8Array;
  channels?: 3 | 4;
  /** or float pixels, [3, height, width] in [0, 1] (what diffusers' pipelines accept as tensors) */
  pixels?: Float32Array;
}

/** An input image as NCHW float32 in [-1, 1] (diffusers' preprocess: x / 255 * 2 - 1). */
export function imageToTensor(img: InputImage): Float32Array {
  if (img.pixels) {
    if (img.pixels.length !== 3 * img.width * img.height) throw new ArgumentError(`image pixels hold ${img.pixels.length} values for 3x${img.height}x${img.width}`);
    return img.pixels.map((v) => Math.fround(2 * v) - 1);
  }
  if (!img.data) throw new ArgumentError('an input image needs data (bytes) or pixels (floats)');
  const ch = img.channels ?? (img.data.length === img.width * img.height * 4 ? 4 : 3);
  if (img.data.length !== img.width * img.height * ch) throw new ArgumentError(`image data has ${img.data.length} bytes for ${img.width}x${img.height}x${ch}`);
  const plane = img.width * img.height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[c * plane + i] = (img.data[i * ch + c] / 255) * 2 - 1;
  return out;
}

/**
 * The input image at width x height: as it is when it has that size, else resized as diffusers'
 * VaeImageProcessor does (PIL LANCZOS on the 8-bit RGB; alpha is dropped, as PIL's
 * convert('RGB')), or refused (`resize` false). Float pixel images must already have the size.
 */
export function fitImage(img: InputImage, width: number, height: number, resize: boolean): InputImage {
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1) throw new ArgumentError(`the input image must have a positive integer size, got ${img.width}x${img.height}`);
  if (img.width === width && img.height === height) return img;
  const sizes = `the input image is ${img.width}x${img.height}, the output ${width}x${height}`;
  if (width < 8 || height < 8) throw new ArgumentError(`${sizes}: the image is too small (8x8 pixels at least)`);
  if (!resize) throw new ArgumentError(`${sizes}: resize it, or leave resizeImage on to resize it as diffusers does (Lanczos)`);
  if (img.pixels || !img.data) throw new ArgumentError(`${sizes}: float pixel images are not resized; give 8-bit data or a PNG, or pixels of the output size`);
  const ch = img.channels ?? (img.data.length === img.width * img.height * 4 ? 4 : 3);
  if (img.data.length !== img.width * img.height * ch) throw new ArgumentError(`image data has ${img.data.length} bytes for ${img.width}x${img.height}x${ch}`);
  let rgb = img.data;
  if (ch === 4) {
    rgb = new Uint8Array(img.width * img.height * 3);
    for (let i = 0; i < img.width * img.height; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = img.data[i * 4 + c];
  }
  return { width, height, channels: 3, data: resizeLanczos(rgb, img.width, img.height, 3, width, height) };
}

/** Reads a PNG (file path or bytes) as RGBA. */
export function readPng(source: string | Uint8Array): InputImage {
  let bytes: Buffer;
  if (typeof source === 'string') {
    if (!fs.existsSync(source)) throw new FileNotFoundError(source, 'image');
    bytes = fs.readFileSync(source);
  } else {
    bytes = Buffer.from(source);
  }
  const what = typeof source === 'string' ? source : 'the image';
  pngChunks(bytes, what); // truncated / corrupt files named as such before decoding
  let png: PNG;
  try {
    png = PNG.sync.read(bytes);
  } catch {
    throw new ArgumentError(`${what}: the PNG's image data cannot be decoded (corrupt)`);
  }
  return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength), channels: 4 };
}
