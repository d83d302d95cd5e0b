// native/graph/op_defs.h is the one definition of every op: TypeScript's schema
// (lib/graph/op_schema.ts) is generated from the addon and must be current; the builder encodes
// attributes by name through it, and the graph's rules name what they refuse.
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { OP_NAMES, OP_SCHEMA, Act, GraphBuilder, encodeAttrs } = require('../../dist/graph');
const { addon } = require('../../dist/native');
const { render } = require('../../scripts/gen-op-schema');

describe('op table', () => {
  it('lib/graph/op_schema.ts is what scripts/gen-op-schema.js makes of the addon (regenerate after changing op_defs.h)', () => {
    const file = fs.readFileSync(path.join(__dirname, '..', '..', 'lib', 'graph', 'op_schema.ts'), 'utf8');
    assert.strictEqual(file, render(addon().opSchema()));
  });

  it('the compiled schema agrees with the addon: names, codes, inputs, attributes, activations', () => {
    const native = addon().opSchema();
    assert.deepStrictEqual(OP_NAMES, native.ops.map((o) => o.name));
    assert.deepStrictEqual(JSON.parse(JSON.stringify(OP_SCHEMA)), JSON.parse(JSON.stringify(native.ops)));
    native.acts.forEach((name, i) => assert.strictEqual(Act[Act[i]], i, name));
    assert.strictEqual(Object.keys(Act).filter((k) => Number.isNaN(Number(k))).length, native.acts.length);
  });

  it('attributes are encoded by name with the schema defaults; unknown or missing ones are refused', () => {
    assert.deepStrictEqual(encodeAttrs('conv2d', { pad_top: 1, act: Act.Silu }), [1, 1, 1, 0, 0, 0, 1, Act.Silu]);
    assert.deepStrictEqual(encodeAttrs('attention', { heads: 8, scale: 0.125, causal: true }), [8, 0.125, 1]);
    assert.deepStrictEqual(encodeAttrs('unary', {}), [Act.None, 1, 0, 1, 0, -Infinity, Infinity]);
    assert.throws(() => encodeAttrs('conv2d', { padding: 1 }), /conv2d: unknown attribute 'padding'/);
    assert.throws(() => encodeAttrs('group_norm', { eps: 1e-5 }), /group_norm: attribute 'groups' is required/);
  });

  it('the graph checks every attribute by its kind and range and names it', () => {
    const t = (shape) => addon().tensorFromFloat32('F32', shape, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5));
    const cases = [
      [(g, x) => g.op('conv2d', [x, t([2, 4, 3, 3])], { stride_h: 0 }), /conv2d: attribute stride_h must be an integer in \[1, 64\], got 0/],
      [(g, x) => g.op('conv2d', [x, t([2, 4, 3, 3])], { upsample: 1.5 }), /attribute upsample must be an integer/],
      [(g, x) => g.op('conv2d', [x, t([2, 4, 3, 3])], { act: 99 }), /attribute act must be an integer in \[0, 8\]/],
      [(g, x) => g.op('group_norm', [x, t([4]), t([4])], { groups: 2, eps: 0 }), /group_norm: attribute eps must be positive/],
      [(g, x) => g.op('unary', [x], { a: Infinity }), /unary: attribute a must be finite/],
      [(g, x) => g.op('unary', [x], { lo: NaN }), /unary: attribute lo must not be NaN/],
      [(g, x) => g.op('unary', [x], { lo: 2, hi: 1 }), /unary: lo must not exceed hi/],
      [(g, x) => g.op('group_norm', [x, t([4]), t([4])], { groups: 3, eps: 1e-5 }), /group_norm: 4 channels are not divisible by 3 groups/],
      [(g, x) => g.op('conv2d', [x, t([2, 5, 3, 3])], {}), /conv2d: x \[1, 6, 6, 4\] does not match w \[2, 5, 3, 3\]/],
      [(g, x) => g.op('linear', [x], {}), /linear: takes 2..4 inputs, got 1/],
      [(g, x) => g.op('linear', [x, undefined, t([4])], {}), /linear: input w is required/],
      [(g, x) => g.op('slice', [x], { axis: 1, start: 4, length: 3 }), /slice: \[4, 7\) outside axis 1 of \[1, 6, 6, 4\]/],
      [(g, x) => g.op('permute', [x], { rank: 4, axis0: 0, axis1: 0, axis2: 1, axis3: 2 }), /permute: axes repeat/],
      [(g, x) => g.op('reshape', [x], { rank: 2, dim0: 5, dim1: 7 }), /reshape: cannot reshape \[1, 6, 6, 4\] to \[5, 7\]/],
    ];
    for (const [make, msg] of cases) {
      const g = new GraphBuilder();
      const x = g.input('x', [1, 6, 6, 4]);
      assert.throws(() => make(g, x), (e) => e.code === 'ERR_ONESTEP_GRAPH' && msg.test(e.message), String(msg));
    }
  });

  it('output shapes and multiply-adds come from the graph rules', () => {
    const g = new GraphBuilder({ dryRun: true });
    const x = g.input('x', [2, 9, 7, 4]);
    const w = { dtype: 'F16', shape: [6, 4, 3, 3] };
    const y = g.op('conv2d', [x, g.constant(w)], { stride_h: 2, pad_top: 1, pad_bottom: 1, pad_left: 1, pad_right: 1 });
    assert.deepStrictEqual(y.shape, [2, 5, 7, 6]);
    assert.strictEqual(g.macs().conv, 2 * 5 * 7 * 6 * 3 * 3 * 4);
    const q = g.reshape(y, [2, 35, 6]);
    g.attention(q, q, q, 2, 0.5);
    assert.strictEqual(g.macs().attentionQK, 2 * 35 * 35 * 6);
  });
});
