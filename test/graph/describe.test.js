// Graph descriptions in parts (generators that yield where the event loop may run) and the models'
// graph cache: one description per key, at once or yielding, cleared and closed safely.
'use strict';
const assert = require('assert');
const { describeNow, describeYielding, GraphCache } = require('../../dist/graph/describe');
const { DisposedError } = require('../../dist/errors');

/** A description of `parts` parts that counts what ran and returns a disposable "graph". */
function counting(log, name, parts) {
  return function* () {
    log.described.push(name);
    for (let i = 0; i < parts; i++) {
      log.parts++;
      yield;
    }
    const graph = { name, disposed: false, dispose() { this.disposed = true; } };
    log.graphs.push(graph);
    return graph;
  };
}

const newLog = () => ({ described: [], parts: 0, graphs: [] });

describe('graph descriptions in parts', () => {
  it('describeNow runs every part at once; describeYielding lets timers fire between parts', async () => {
    const log = newLog();
    assert.strictEqual(describeNow(counting(log, 'a', 5)()).name, 'a');
    assert.strictEqual(log.parts, 5);

    let ticks = 0;
    const busy = (ms) => {
      const t = Date.now();
      while (Date.now() - t < ms);
    };
    function* slow() {
      for (let i = 0; i < 6; i++) {
        busy(3);
        yield;
      }
      return 'done';
    }
    const timer = setInterval(() => ticks++, 0);
    const got = await describeYielding(slow());
    clearInterval(timer);
    assert.strictEqual(got, 'done');
    assert.ok(ticks >= 2, `the timer fired ${ticks} times during 6 parts of 3 ms`);
  });

  describe('GraphCache', () => {
    it('describes a key once, whether asked at once or yielding, and shares a pending description', async () => {
      const log = newLog();
      const cache = new GraphCache('test');
      const [a, b] = await Promise.all([cache.getYielding('k', counting(log, 'y1', 3)), cache.getYielding('k', counting(log, 'y2', 3))]);
      assert.strictEqual(a, b);
      assert.deepStrictEqual(log.described, ['y1']);
      assert.strictEqual(cache.get('k', counting(log, 'n', 1)), a);
      assert.strictEqual(await cache.getYielding('k', counting(log, 'y3', 1)), a);
      assert.deepStrictEqual(log.described, ['y1']);
      assert.strictEqual(cache.get('other', counting(log, 'n2', 2)).name, 'n2');
      assert.deepStrictEqual([...cache.values()].map((g) => g.name).sort(), ['n2', 'y1']);
      assert.strictEqual(cache.size, 2);
    });

    it('a graph described at once while a yielding one was under way wins; the other is disposed', async () => {
      const log = newLog();
      const cache = new GraphCache('test');
      const pending = cache.getYielding('k', counting(log, 'slow', 4));
      const now = cache.get('k', counting(log, 'now', 1));
      const got = await pending;
      assert.strictEqual(got, now);
      assert.ok(log.graphs.find((g) => g.name === 'slow').disposed);
      assert.ok(!now.disposed);
    });

    it('clear() disposes every graph; a description under way is dropped and described again', async () => {
      const log = newLog();
      const cache = new GraphCache('test');
      const first = cache.get('a', counting(log, 'a', 1));
      const pending = cache.getYielding('k', counting(log, 'k', 3));
      cache.clear();
      assert.ok(first.disposed);
      const got = await pending;
      assert.deepStrictEqual(log.described, ['a', 'k', 'k']);
      assert.ok(log.graphs[1].disposed, 'the graph described before the clear is disposed');
      assert.strictEqual(got, log.graphs[2]);
      assert.ok(!got.disposed);
      assert.deepStrictEqual([...cache.values()], [got]);
    });

    it('a description that throws rejects its callers and leaves nothing pending', async () => {
      const cache = new GraphCache('test');
      function* bad() {
        yield;
        throw new RangeError('bad weight');
      }
      await assert.rejects(Promise.all([cache.getYielding('k', bad), cache.getYielding('k', bad)]), RangeError);
      const log = newLog();
      assert.strictEqual((await cache.getYielding('k', counting(log, 'ok', 1))).name, 'ok');
    });

    it('close() disposes every graph; later requests and descriptions under way are DisposedErrors', async () => {
      const log = newLog();
      const cache = new GraphCache('my model');
      const g = cache.get('a', counting(log, 'a', 0));
      const pending = cache.getYielding('k', counting(log, 'k', 3));
      cache.close();
      assert.ok(g.disposed);
      await assert.rejects(pending, (e) => e instanceof DisposedError && e.code === 'ERR_ONESTEP_DISPOSED' && /my model/.test(e.message));
      assert.ok(log.graphs.every((x) => x.disposed), 'the graph finished after close is disposed');
      assert.throws(() => cache.get('a', counting(log, 'b', 0)), DisposedError);
      await assert.rejects(cache.getYielding('a', counting(log, 'c', 0)), DisposedError);
    });
  });
});
