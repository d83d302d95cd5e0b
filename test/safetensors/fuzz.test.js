// 1,000 mutants of real files: each loads fully or fails with a typed OnestepError (never a
// crash, a hang or another exception). More: node scripts/fuzz-safetensors.js --count 100000
'use strict';
const assert = require('assert');
const { fuzz } = require('../../scripts/fuzz-safetensors.js');
const { fixture } = require('../helpers/fixtures');
const { freshSeed } = require('../helpers/random');

describe('safetensors: fuzz', () => {
  it('1,000 mutants of real files load or fail with typed errors', function () {
    this.timeout(300000);
    const seed = freshSeed();
    const seeds = [
      fixture('models', 'tiny-taesd', 'diffusion_pytorch_model.safetensors'),
      fixture('lora', 'sd15_lora_kohya_te.safetensors'),
      fixture('models', 'tiny-sd15', 'text_encoder', 'model.safetensors'),
      fixture('models', 'tiny-sdxl', 'vae', 'diffusion_pytorch_model.safetensors'),
      fixture('golden', 'pipe_sd21_turbo_1step.safetensors'),
    ];
    const outcomes = fuzz({ seeds, count: 1000, seed });
    const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
    assert.strictEqual(total, 1000, `seed ${seed}`);
    // the mutations must actually reach the validator: many distinct typed errors
    const codes = Object.keys(outcomes).filter((k) => k !== 'ok');
    assert.ok(codes.length >= 6, `seed ${seed}: only ${codes.join(', ')}`);
  });
});
