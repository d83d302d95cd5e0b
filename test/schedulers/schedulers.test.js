// Schedulers beyond the goldens: the float32 schedule is bit-exact, options are validated, the
// registry maps config classes and user names, and the fused step op applies coefficients.
'use strict';
const assert = require('assert');
const fs = require('fs');
const { createScheduler, alphasCumprodFor, betasFor } = require('../../dist/schedulers');
const { fmaf, roundHalfEven } = require('../../dist/schedulers/float32');
const { applyStep, coeffVector } = require('../../dist/schedulers/step');
const { fixture } = require('../helpers/fixtures');
const { Rng } = require('../helpers/random');

const SD = { num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear' };

describe('schedulers', () => {
  it('betas and alphas_cumprod equal the float32 reference tables bit for bit', () => {
    const table = JSON.parse(fs.readFileSync(fixture('schedulers', 'tables', 'alphas_cumprod_scaled_linear.json'), 'utf8'));
    assert.deepStrictEqual(Array.from(betasFor(SD)), table.betas_float32);
    assert.deepStrictEqual(Array.from(alphasCumprodFor(SD)), table.alphas_cumprod_float32);
    const euler = createScheduler({ ...SD, timestep_spacing: 'trailing' }, 'euler');
    assert.deepStrictEqual(Array.from({ length: 1000 }, (_, t) => euler.sigma(t)), table.sigmas_euler_float32);
  });

  it('fmaf rounds once; numpy rounding is half to even', () => {
    assert.strictEqual(fmaf(1 + 2 ** -23, 1 + 2 ** -23, -1), Math.fround(2 ** -22 + 2 ** -46));
    assert.strictEqual(fmaf(3, 5, 7), 22);
    assert.deepStrictEqual([0.5, 1.5, 2.5, 937.5, 812.5, -0.5].map(roundHalfEven), [0, 2, 2, 938, 812, -0]);
  });

  it('the registry maps config classes and user names; unknown ones are typed errors', () => {
    assert.strictEqual(createScheduler({ ...SD, _class_name: 'EulerAncestralDiscreteScheduler' }).name, 'euler_a');
    assert.strictEqual(createScheduler({ ...SD, _class_name: 'EulerDiscreteScheduler' }, 'lcm').name, 'lcm');
    assert.throws(() => createScheduler({ _class_name: 'PNDMScheduler' }), (e) => e.code === 'ERR_ONESTEP_CONFIG' && /PNDMScheduler/.test(e.message));
    assert.throws(() => createScheduler(SD, 'heun'), (e) => e.code === 'ERR_ONESTEP_ARGUMENT' && /heun/.test(e.message));
    assert.throws(() => createScheduler({ ...SD, clip_sample: true }, 'ddim'), (e) => e.code === 'ERR_ONESTEP_CONFIG' && /clip_sample/.test(e.message));
    assert.throws(() => createScheduler({ ...SD, beta_schedule: 'exotic' }, 'ddim'), (e) => e.code === 'ERR_ONESTEP_CONFIG');
  });

  it("rectified flow keeps the reference's float64 timesteps (Python floats) and feeds the UNet their float32", () => {
    // InstaFlow's t_i = (1 - i/N) * 1000 in Python floats: at N = 3 the reference runs 666.6666666666667
    const plan = createScheduler({}, 'flow').plan({ steps: 3 });
    assert.strictEqual(plan.timesteps[1], 666.6666666666667);
    assert.strictEqual(plan.timestepDtype, 'float64');
    assert.notStrictEqual(Math.fround(plan.timesteps[1]), plan.timesteps[1]);
    for (const n of [1, 2, 3, 5, 6, 7]) {
      const p = createScheduler({}, 'flow').plan({ steps: n });
      assert.deepStrictEqual(p.timesteps, Array.from({ length: n }, (_, i) => (1 - i / n) * 1000));
      assert.deepStrictEqual(p.steps.map((st) => st.t), p.timesteps);
    }
  });

  it('refuses impossible plans with typed errors', () => {
    const lcm = createScheduler(SD, 'lcm');
    assert.throws(() => lcm.plan({ steps: 0 }), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
    assert.throws(() => lcm.plan({ steps: 1, timesteps: [500, 800] }), (e) => e.code === 'ERR_ONESTEP_ARGUMENT' && /descending/.test(e.message));
    assert.throws(() => lcm.plan({ steps: 4, timesteps: [1000] }), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
    const ea = createScheduler({ ...SD, timestep_spacing: 'trailing' }, 'euler_a');
    assert.throws(() => ea.plan({ steps: 1, strength: 0.5 }), (e) => e.code === 'ERR_ONESTEP_ARGUMENT' && /no step/.test(e.message));
    assert.throws(() => ea.plan({ steps: 2, strength: 1.5 }), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
    assert.throws(() => createScheduler(SD, 'tcd').plan({ steps: 2, eta: 2 }), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
  });

  it('v_prediction with DDIM gives x0 = sqrt(a) x - sqrt(1-a) v', () => {
    const ddim = createScheduler({ ...SD, prediction_type: 'v_prediction', timestep_spacing: 'trailing' }, 'ddim');
    const s = ddim.plan({ steps: 1 }).steps[0];
    const a = s.scalars.alpha_prod_t;
    assert.ok(Math.abs(s.coeffs.a1 - Math.sqrt(a)) < 1e-6 && Math.abs(s.coeffs.b1 + Math.sqrt(1 - a)) < 1e-6);
  });

  it('the fused step op applies the coefficients, with classifier-free guidance', async () => {
    const rng = new Rng();
    const shape = [1, 4, 3, 5];
    const n = 60;
    const x = rng.float32Array(n), eu = rng.float32Array(n), ec = rng.float32Array(n), noise = rng.float32Array(n);
    const c = { a1: 0.7, b1: -0.3, a2: 1.1, b2: 0.2, g2: 0.5, nu: 0.25 };
    const out = new Float32Array(2 * n);
    out.set(eu);
    out.set(ec, n);
    const { GraphBuilder } = require('../../dist/graph');
    const g = new GraphBuilder();
    const xv = g.input('x', shape), ov = g.input('out', [2, 4, 3, 5]), cv = g.input('coeffs', [8]), nv = g.input('noise', shape);
    g.output('prev', g.schedulerStep(xv, ov, cv, nv, 'prev'));
    const r = await g.build().run({ x, out, coeffs: coeffVector(c, 7.5), noise });
    const prev = r.prev.toFloat32();
    for (let i = 0; i < n; i++) {
      const e = -6.5 * eu[i] + 7.5 * ec[i];
      const d = 0.7 * x[i] - 0.3 * e;
      const want = 1.1 * x[i] + 0.2 * e + 0.5 * d + 0.25 * noise[i];
      assert.ok(Math.abs(prev[i] - want) <= 1e-5 * (1 + Math.abs(want)), `seed ${rng.seed} element ${i}`);
    }
    const plain = await applyStep(shape, x, ec, c, noise);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(plain.denoised[i] - (0.7 * x[i] - 0.3 * ec[i])) < 1e-5);
  });
});
