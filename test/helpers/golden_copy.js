// Modified copies of fixtures for runner tests: the same tensors with another case description,
// in a scratch fixture tree whose models/ and lora/ point at the shared ones.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { fixture, fixturesDir } = require('./fixtures');

/** The __metadata__.case object of a golden file. */
function readCase(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  return JSON.parse(header.__metadata__.case);
}

/** Writes `dst`: `src` with its case replaced by mutate(case) (the tensors unchanged). */
function copyWithCase(src, dst, mutate) {
  // mutate(c) changes the case in place
  const buf = fs.readFileSync(src);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const c = JSON.parse(header.__metadata__.case);
  if (mutate) mutate(c);
  header.__metadata__.case = JSON.stringify(c);
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  fs.writeFileSync(dst, Buffer.concat([len, Buffer.from(json), buf.subarray(8 + n)]));
  return dst;
}

/** A scratch fixture tree: models/ and lora/ linked to the shared fixtures, nothing else yet. */
function scratchTree() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-fixtures-'));
  for (const d of ['models', 'lora']) fs.symlinkSync(fixture(d), path.join(dir, d), 'dir');
  return dir;
}

/** The golden files of a case folder's index.json with their case metadata (read from each file). */
function goldens(folder = 'golden') {
  const index = JSON.parse(fs.readFileSync(fixture(folder, 'index.json'), 'utf8'));
  return Object.keys(index).map((name) => ({ name, file: path.join(fixturesDir, folder, name), meta: readCase(path.join(fixturesDir, folder, name)), index: index[name] }));
}

module.exports = { readCase, copyWithCase, scratchTree, goldens };
