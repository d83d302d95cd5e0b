// Image resizing as diffusers does it: PIL's Image.resize(size, LANCZOS) on 8-bit images
// (VaeImageProcessor.resize, used for img2img inputs and ControlNet control images). This follows
// Pillow's ImagingResample (libImaging/Resample.c) step for step so the bytes are the same: a
// separable two-pass convolution (horizontal first, into an 8-bit intermediate holding only the
// rows the vertical pass reads), coefficients from a Lanczos-3 window widened by the scale when
// downsampling, normalised, then rounded to fixed point with 22 fractional bits; each output is
// the rounded, clipped sum.
import { ArgumentError } from '../errors';

const PRECISION_BITS = 32 - 8 - 2;
const SUPPORT = 3;

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

function lanczos(x: number): number {
  return x >= -SUPPORT && x < SUPPORT ? sinc(x) * sinc(x / SUPPORT) : 0;
}

interface Coeffs {
  ksize: number;
  /** per output pixel: first input index, count */
  bounds: Int32Array;
  /** fixed-point coefficients, ksize per output pixel */
  kk: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the whole input range. */
function coeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = lanczos((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      const v = x < xmax ? (ww !== 0 ? k[x] / ww : k[x]) : 0;
      // (int)(±0.5 + v * 2^22): C's truncation toward zero
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(v: number): number {
  if (v >= 1 << (PRECISION_BITS + 8)) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/**
 * Resizes interleaved 8-bit pixels ([height, width, channels], row-major) to outWidth x outHeight
 * exactly as PIL's Image.resize((outWidth, outHeight), Image.LANCZOS) does for an "RGB" / "L"
 * image. The same size returns a copy.
 */
export function resizeLanczos(data: Uint8Array, width: number, height: number, channels: number, outWidth: number, outHeight: number): Uint8Array {
  for (const [k, v] of [['width', width], ['height', height], ['output width', outWidth], ['output height', outHeight], ['channels', channels]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ArgumentError(`resize: ${k} must be a positive integer, got ${v}`);
  }
  if (data.length !== width * height * channels) throw new ArgumentError(`resize: ${data.length} bytes for ${width}x${height}x${channels}`);
  const needH = outWidth !== width;
  const needV = outHeight !== height;
  const vert = coeffs(height, outHeight);
  let src = data;
  let srcW = width;
  let rowOffset = 0;
  let vb = vert.bounds;
  if (needH) {
    // only the rows the vertical pass reads
    const first = needV ? vert.bounds[0] : 0;
    const last = needV ? vert.bounds[outHeight * 2 - 2] + vert.bounds[outHeight * 2 - 1] : height;
    const rows = last - first;
    const hz = coeffs(width, outWidth);
    const tmp = new Uint8Array(rows * outWidth * channels);
    const half = 1 << (PRECISION_BITS - 1);
    for (let y = 0; y < rows; y++) {
      const inRow = (y + first) * width * channels;
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = hz.bounds[xx * 2];
        const xmax = hz.bounds[xx * 2 + 1];
        const kb = xx * hz.ksize;
        for (let c = 0; c < channels; c++) {
          let ss = half;
          for (let x = 0; x < xmax; x++) ss += data[inRow + (x + xmin) * channels + c] * hz.kk[kb + x];
          tmp[(y * outWidth + xx) * channels + c] = clip8(ss);
        }
      }
    }
    src = tmp;
    srcW = outWidth;
    rowOffset = first;
    if (needV) {
      vb = Int32Array.from(vert.bounds);
      for (let i = 0; i < outHeight; i++) vb[i * 2] -= rowOffset;
    }
  }
  if (!needV) return needH ? src : Uint8Array.from(data);
  const out = new Uint8Array(outHeight * srcW * channels);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = vb[yy * 2];
    const ymax = vb[yy * 2 + 1];
    const kb = yy * vert.ksize;
    for (let xx = 0; xx < srcW; xx++) {
      for (let c = 0; c < channels; c++) {
        let ss = half;
        for (let y = 0; y < ymax; y++) ss += src[((y + ymin) * srcW + xx) * channels + c] * vert.kk[kb + y];
        out[(yy * srcW + xx) * channels + c] = clip8(ss);
      }
    }
  }
  return out;
}
