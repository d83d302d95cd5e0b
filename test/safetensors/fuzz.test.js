// 1,000 mutants of real files: each loads fully or fails with a typed OnestepError (never a
// crash, a hang or another exception). More: node scripts/fuzz-safetensors.js --count 100000
'use strict';
const assert = require('assert');
const fs = require('fs');
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
      // a golden (tensors + a large __metadata__ case): the first pipeline golden golden/index.json lists
      fixture('golden', Object.entries(JSON.parse(fs.readFileSync(fixture('golden', 'index.json'), 'utf8'))).find(([, g]) => g.kind === 'pipeline')[0]),
    ];
    const outcomes = fuzz({ seeds, count: 1000, seed });
    const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
    assert.strictEqual(total, 1000, `seed ${seed}`);
    // the mutations must actually reach the validator: many distinct typed errors
    const codes = Object.keys(outcomes).filter((k) => k !== 'ok');
    assert.ok(codes.length >= 6, `seed ${seed}: only ${codes.join(', ')}`);
  });
});
