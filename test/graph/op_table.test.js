// The TypeScript op table mirrors the native one row by row.
'use strict';
const assert = require('assert');
const { OPS } = require('../../dist/graph');
const { addon } = require('../../dist/native');

describe('op table', () => {
  it('TypeScript and native agree on every op: name, code, arity, attributes', () => {
    assert.deepStrictEqual(addon().opTable(), OPS.map((o) => ({ ...o })));
  });
});
