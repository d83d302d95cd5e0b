#!/usr/bin/env node
// Mutation fuzzer for the safetensors loader: takes real files, mutates them (bytes, header length,
// truncation, structured JSON edits), loads every mutant (header parse, native mapping, read of
// every tensor) and requires a valid load or a typed OnestepError — never another exception, a
// crash or a hang. The test suite runs 1,000 mutants; run more here:
//   node scripts/fuzz-safetensors.js [--count 100000] [--seed N] [FILES...]
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { OnestepError, openSafetensors } = require('../dist/index.js');

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const DTYPES = ['F32', 'F16', 'BF16', 'I64', 'F64', 'U8', 'BOOL', 'I32', 'F8_E4M3', 'f32', 'F33', '', 'X'];
const WEIRD_NUMBERS = [-1, 0, 1, 2, 3, 7, 1.5, -0.5, 1e3, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 63, 1e300, '"7"', 'null', 'true', '[]', '{}'];
const TOKENS = ['"', '{', '}', '[', ']', ',', ':', '\\', '\\u0000', '\\ud800', '\u0000', '\xff', 'null', '-', '1e999', ' '];

function mutate(original, rand) {
  const int = (n) => Math.floor(rand() * n);
  const pick = (a) => a[int(a.length)];
  let buf = Buffer.from(original);
  const n = Number(buf.readBigUInt64LE(0));
  const strategy = int(8);
  switch (strategy) {
    case 0: {  // flip bytes in the header
      const flips = 1 + int(8);
      for (let k = 0; k < flips; k++) buf[8 + int(n)] = int(256);
      return { buf, what: `flip ${flips} header bytes` };
    }
    case 1: {  // header length
      const choices = [n + 1, n - 1, n + 8, 0, 1, 7, buf.length, buf.length - 8, 2 ** 32, 100_000_001, int(2 ** 31)];
      const v = pick(choices);
      if (rand() < 0.2) buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(int(2 ** 30)) * BigInt(int(2 ** 30)) * 17n), 0);
      else buf.writeBigUInt64LE(BigInt(Math.max(0, v)), 0);
      return { buf, what: 'header length' };
    }
    case 2: {  // truncate
      const cut = int(buf.length);
      return { buf: buf.subarray(0, cut), what: `truncate at ${cut}` };
    }
    case 3: {  // append garbage
      const extra = crypto.randomBytes(1 + int(64));
      return { buf: Buffer.concat([buf, extra]), what: 'append bytes' };
    }
    case 4: {  // splice a token into the header text
      const text = buf.subarray(8, 8 + n).toString('latin1');
      const at = int(text.length);
      const tok = pick(TOKENS);
      const newText = text.slice(0, at) + tok + text.slice(at + (rand() < 0.5 ? 0 : 1 + int(4)));
      return { buf: rebuild(Buffer.from(newText, 'latin1'), buf.subarray(8 + n), rand), what: `splice ${JSON.stringify(tok)}` };
    }
    default: {  // structured edit of one entry
      const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
      const names = Object.keys(header).filter((k) => k !== '__metadata__');
      const name = pick(names);
      const e = header[name];
      let what;
      let raw;
      switch (int(9)) {
        case 0: e.dtype = pick(DTYPES); what = `dtype ${e.dtype}`; break;
        case 1: {
          const k = int(e.shape.length + 1);
          raw = pick(WEIRD_NUMBERS);
          e.shape[k] = '@@RAW@@';
          what = `shape[${k}] = ${raw}`;
          break;
        }
        case 2: {
          const k = int(2);
          raw = rand() < 0.5 ? pick(WEIRD_NUMBERS) : e.data_offsets[k] + pick([-4, -2, -1, 1, 2, 4, 8]);
          e.data_offsets[k] = '@@RAW@@';
          what = `data_offsets[${k}] = ${raw}`;
          break;
        }
        case 3: delete e[pick(['dtype', 'shape', 'data_offsets'])]; what = 'delete field'; break;
        case 4: e.extra = 1; what = 'extra field'; break;
        case 5: e.shape = e.shape.slice(0, int(e.shape.length)); what = 'drop dims'; break;
        case 6: header.__metadata__ = pick([{ a: 1 }, [], 'x', { a: { b: 'c' } }, null, { ok: 'yes' }]); what = 'metadata'; break;
        case 7: { // swap offsets with another tensor
          const other = header[pick(names)];
          [e.data_offsets, other.data_offsets] = [other.data_offsets, e.data_offsets];
          what = 'swap offsets';
          break;
        }
        default: { // duplicate the entry textually
          let text = JSON.stringify(header);
          const entry = `${JSON.stringify(name)}:${JSON.stringify(e)}`;
          text = text.replace(/^\{/, `{${entry},`);
          return { buf: rebuild(Buffer.from(text), buf.subarray(8 + n), rand), what: 'duplicate name' };
        }
      }
      let text = JSON.stringify(header);
      if (raw !== undefined) text = text.replace('"@@RAW@@"', String(raw));
      return { buf: rebuild(Buffer.from(text), buf.subarray(8 + n), rand), what };
    }
  }
}

function rebuild(headerBytes, data, rand) {
  let h = headerBytes;
  if (rand() < 0.5) h = Buffer.concat([h, Buffer.alloc(Math.floor(rand() * 8), 0x20)]);
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(BigInt(h.length), 0);
  h.copy(out, 8);
  data.copy(out, 8 + h.length);
  return out;
}

// Loads a file completely. Returns 'ok' or the error code; throws if the error is not typed.
function loadFully(file) {
  let f;
  try {
    f = openSafetensors(file);
    for (const name of f.names()) {
      const info = f.info(name);
      try {
        const t = f.tensor(name);
        const v = t.toFloat32();
        const numel = info.shape.reduce((a, b) => a * b, 1);
        if (v.length !== numel) throw new Error(`tensor '${name}': ${v.length} values, expected ${numel}`);
        t.dispose();
      } catch (e) {
        if (!(e instanceof OnestepError)) throw e;
      }
    }
    return 'ok';
  } catch (e) {
    if (e instanceof OnestepError) return e.code;
    throw e;
  } finally {
    if (f) f.close();
  }
}

/** Runs `count` mutants of `seeds` (file paths); returns counts per outcome. */
function fuzz({ seeds, count, seed, dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-fuzz-')) }) {
  const rand = mulberry32(seed);
  const originals = seeds.map((s) => fs.readFileSync(s));
  const outcomes = {};
  const file = path.join(dir, 'mutant.safetensors');
  try {
    for (let i = 0; i < count; i++) {
      const src = originals[i % originals.length];
      const { buf, what } = mutate(src, rand);
      fs.writeFileSync(file, buf);
      let outcome;
      try {
        outcome = loadFully(file);
      } catch (e) {
        const keep = path.join(os.tmpdir(), `onestep-fuzz-failure-${seed}-${i}.safetensors`);
        fs.writeFileSync(keep, buf);
        e.message = `mutant ${i} (seed ${seed}, ${what}, saved to ${keep}): untyped error: ${e.message}`;
        throw e;
      }
      outcomes[outcome] = (outcomes[outcome] || 0) + 1;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return outcomes;
}

module.exports = { fuzz, mutate, loadFully };

if (require.main === module) {
  const args = process.argv.slice(2);
  let count = 100000;
  let seed = crypto.randomBytes(4).readUInt32LE(0);
  const files = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--count') count = Number(args[++i]);
    else if (args[i] === '--seed') seed = Number(args[++i]) >>> 0;
    else files.push(args[i]);
  }
  if (files.length === 0) {
    const fx = path.resolve(__dirname, '..', '..', 'shared', 'fixtures');
    files.push(
      path.join(fx, 'models', 'tiny-taesd', 'diffusion_pytorch_model.safetensors'),
      path.join(fx, 'lora', 'sd15_lora_kohya_te.safetensors'),
      path.join(fx, 'models', 'tiny-sd15', 'text_encoder', 'model.safetensors'),
      path.join(fx, 'models', 'tiny-sdxl', 'vae', 'diffusion_pytorch_model.safetensors'),
    );
  }
  const t0 = Date.now();
  const outcomes = fuzz({ seeds: files, count, seed });
  console.log(`fuzz: ${count} mutants, seed ${seed}, ${((Date.now() - t0) / 1000).toFixed(1)} s, no untyped error`);
  for (const [k, v] of Object.entries(outcomes).sort((a, b) => b[1] - a[1])) console.log(`  ${k}: ${v}`);
}
