// The sinusoidal embeddings against the tables torch produced (schedulers/tables/embeddings.*).
// torch evaluates exp with SLEEF's vectorised expf, which is sometimes 1 ulp above the correctly
// rounded value we compute; at t ~ 1000 that moves sin/cos by up to ~6e-5, hence the tolerances.
'use strict';
const assert = require('assert');
const { GraphBuilder } = require('../../dist/graph');
const { openSafetensors } = require('../..');
const { fixture } = require('../helpers/fixtures');
const { relL2 } = require('../helpers/reference_ops');

async function embed(t, dim, flip, shift, form, pre = 1) {
  const g = new GraphBuilder();
  const x = g.input('t', [t.length]);
  g.output('y', g.timestepEmbedding(pre === 1 ? x : g.affine(x, pre), dim, flip, shift, 1, form));
  const graph = g.build();
  const out = await graph.run({ t });
  graph.dispose();
  return out.y.toFloat32();
}

describe('timestep and guidance embeddings vs torch', () => {
  const f = openSafetensors(fixture('schedulers', 'tables', 'embeddings.safetensors'));
  after(() => f.close());
  const t = () => f.float32('timesteps');

  for (const [key, dim, flip, shift] of [
    ['timestep_embedding.dim320.shift0', 320, true, 0],
    ['timestep_embedding.dim320.shift1', 320, true, 1],
    ['timestep_embedding.dim256.shift0', 256, true, 0],
    ['timestep_embedding.dim256.shift1', 256, true, 1],
    ['timestep_embedding.dim320.shift0.noflip', 320, false, 0],
  ]) {
    it(key, async () => {
      const got = await embed(t(), dim, flip, shift, 'timestep');
      const want = f.float32(key);
      let maxAbs = 0;
      for (let i = 0; i < want.length; i++) maxAbs = Math.max(maxAbs, Math.abs(got[i] - want[i]));
      assert.ok(relL2(got, want) < 1e-5 && maxAbs < 2e-4, `rel ${relL2(got, want)} max ${maxAbs}`);
    });
  }

  it('LCM guidance embedding (w * 1000, guidance order, not flipped)', async () => {
    const got = await embed(f.float32('guidance_w'), 256, false, 1, 'guidance', 1000);
    const want = f.float32('guidance_embedding.dim256');
    assert.ok(relL2(got, want) < 1e-4, `rel ${relL2(got, want)}`);
  });

  it('SDXL time-id embeddings', async () => {
    const ids = f.float32('sdxl_time_ids');
    const got = await embed(ids, 256, true, 0, 'timestep');
    const want = f.float32('sdxl_time_embeds');
    assert.ok(relL2(got, want) < 1e-5, `rel ${relL2(got, want)}`);
  });
});
