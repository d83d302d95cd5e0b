// Image resizing against the reference: the ControlNet goldens whose control image the pipeline
// resized (diffusers' control image processor: PIL LANCZOS, then / 255) give the resized bytes;
// ours must be identical.
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { resizeLanczos } = require('../../dist/pipelines/resize');
const { openSafetensors } = require('../../dist/safetensors');
const { fixture } = require('../helpers/fixtures');
const { Rng } = require('../helpers/random');

describe('pipelines: resizing as PIL LANCZOS', () => {
  const index = JSON.parse(fs.readFileSync(fixture('controlnet', 'index.json'), 'utf8'));
  // every pipeline golden whose control image has another size than what the ControlNet received
  const resized = Object.keys(index).filter((name) => {
    const t = index[name].tensors || {};
    return t.control_image && t.controlnet_cond && t.control_image.shape.slice(2).join() !== t.controlnet_cond.shape.slice(2).join();
  });

  it('the fixtures hold at least one resized control image', () => assert.ok(resized.length > 0));

  for (const name of resized) {
    it(`${name}: the control image resized byte for byte as diffusers did`, () => {
      const f = openSafetensors(fixture('controlnet', name));
      try {
        const [, C, H, W] = f.info('control_image').shape;
        const src = f.float32('control_image');
        const hwc = new Uint8Array(H * W * C);
        for (let c = 0; c < C; c++) for (let i = 0; i < H * W; i++) hwc[i * C + c] = src[c * H * W + i];
        const [, , oh, ow] = f.info('controlnet_cond').shape;
        const want = f.float32('controlnet_cond'); // [B, C, oh, ow]: the first image
        const got = resizeLanczos(hwc, W, H, C, ow, oh);
        let diff = 0;
        for (let c = 0; c < C; c++) for (let i = 0; i < oh * ow; i++) if (Math.fround(got[i * C + c] / 255) !== want[c * oh * ow + i]) diff++;
        assert.strictEqual(diff, 0, `${diff} of ${oh * ow * C} values differ`);
      } finally {
        f.close();
      }
    });
  }

  it('same size is a copy; sizes are validated', () => {
    const rng = new Rng();
    const d = Uint8Array.from({ length: 5 * 4 * 3 }, () => rng.int(256));
    const same = resizeLanczos(d, 5, 4, 3, 5, 4);
    assert.deepStrictEqual(Array.from(same), Array.from(d));
    assert.notStrictEqual(same, d);
    assert.throws(() => resizeLanczos(d, 5, 4, 3, 0, 4), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
    assert.throws(() => resizeLanczos(d, 6, 4, 3, 3, 4), (e) => e.code === 'ERR_ONESTEP_ARGUMENT' && /60 bytes for 6x4x3/.test(e.message));
  });
});
