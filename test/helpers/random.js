// Seeded random numbers for tests: a fresh seed per run (printed on failure), reproducible with
// ONESTEP_TEST_SEED=<seed>.
'use strict';
const crypto = require('crypto');

function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function freshSeed() {
  if (process.env.ONESTEP_TEST_SEED) return Number(process.env.ONESTEP_TEST_SEED) >>> 0;
  return crypto.randomBytes(4).readUInt32LE(0);
}

class Rng {
  constructor(seed = freshSeed()) {
    this.seed = seed;
    this.next = mulberry32(seed);
  }
  int(n) {
    return Math.floor(this.next() * n);
  }
  pick(arr) {
    return arr[this.int(arr.length)];
  }
  normal() {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  float32Array(n, scale = 1) {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.normal() * scale;
    return a;
  }
}

module.exports = { Rng, freshSeed };
