// The CLIP tokenizer against tokenizer/golden.json (HF slow CLIPTokenizer without ftfy, as diffusers
// runs it): every prompt, both padding styles, loaded from the fixture model folders and from
// tokenizer/ with an explicit pad token; plus framing, decode, the golden kind and error cases.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { CLIPTokenizer, hfCleanText, toByteLevel, fromByteLevel, byteLevelAlphabet } = require('../../dist/tokenizer');
const { TokenizerError, FileNotFoundError } = require('../../dist/errors');
const { fixture, fixturesDir } = require('../helpers/fixtures');

const BOS = 49406;
const EOS = 49407;
const golden = JSON.parse(fs.readFileSync(fixture('tokenizer', 'golden.json'), 'utf8'));

function firstDiff(got, want) {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) if (got[i] !== want[i]) return `position ${i}: got ${got[i]}, expected ${want[i]}`;
  return 'none';
}

function checkAll(tok, field) {
  const bad = [];
  for (const p of golden.prompts) {
    const ids = tok.encode(p.prompt);
    if (JSON.stringify(ids) !== JSON.stringify(p[field])) bad.push(`prompt${p.id} ${JSON.stringify(p.prompt)}: ${firstDiff(ids, p[field])}`);
  }
  assert.deepStrictEqual(bad, [], `${bad.length} of ${golden.prompts.length} prompts differ`);
}

describe('tokenizer: CLIP BPE', () => {
  const tokenizers = {};
  before(async () => {
    tokenizers.sd15 = await CLIPTokenizer.fromPretrained(fixture('models', 'tiny-sd15', 'tokenizer'));
    tokenizers.sd21 = await CLIPTokenizer.fromPretrained(fixture('models', 'tiny-sd21', 'tokenizer'));
    tokenizers.plainEos = await CLIPTokenizer.fromPretrained(fixture('tokenizer'), { padToken: '<|endoftext|>' });
    tokenizers.plainBang = CLIPTokenizer.fromPretrainedSync(fixture('tokenizer'), { padToken: '!', modelMaxLength: 77 });
  });

  it('golden.json holds the prompts and both expected fields', () => {
    assert.strictEqual(golden.prompts.length, golden.num_prompts);
    assert.ok(golden.prompts.length >= 124);
    for (const p of golden.prompts) {
      assert.strictEqual(p.sd15_input_ids.length, 77);
      assert.strictEqual(p.sd2_sdxl2_input_ids.length, 77);
    }
  });

  describe('golden prompts', () => {
    it('tiny-sd15/tokenizer (pad <|endoftext|>) reproduces sd15_input_ids', () => {
      assert.strictEqual(tokenizers.sd15.padTokenId, EOS);
      checkAll(tokenizers.sd15, 'sd15_input_ids');
    });
    it('tiny-sd21/tokenizer (pad "!") reproduces sd2_sdxl2_input_ids', () => {
      assert.strictEqual(tokenizers.sd21.padTokenId, 0);
      checkAll(tokenizers.sd21, 'sd2_sdxl2_input_ids');
    });
    it('tokenizer/ with padToken <|endoftext|> reproduces sd15_input_ids', () => checkAll(tokenizers.plainEos, 'sd15_input_ids'));
    it('tokenizer/ with padToken "!" reproduces sd2_sdxl2_input_ids', () => checkAll(tokenizers.plainBang, 'sd2_sdxl2_input_ids'));
    it('the SDXL folders: tokenizer pads with EOS, tokenizer_2 with 0', async () => {
      const t1 = await CLIPTokenizer.fromPretrained(fixture('models', 'tiny-sdxl', 'tokenizer'));
      const t2 = await CLIPTokenizer.fromPretrained(fixture('models', 'tiny-sdxl', 'tokenizer_2'));
      assert.strictEqual(t1.padTokenId, EOS);
      assert.strictEqual(t2.padTokenId, 0);
      const p = golden.prompts.find((x) => x.prompt === 'wow!!! amazing!!!');
      assert.deepStrictEqual(t1.encode(p.prompt), p.sd15_input_ids);
      assert.deepStrictEqual(t2.encode(p.prompt), p.sd2_sdxl2_input_ids);
    });
    it('the cleaned text equals golden hf_cleaned_text for every prompt', () => {
      for (const p of golden.prompts) assert.strictEqual(hfCleanText(p.prompt), p.hf_cleaned_text, `prompt${p.id}`);
    });
  });

  describe('golden kind', () => {
    it('returns one PASS per prompt and padding style', async () => {
      const { tokenizerKind } = require('../../dist/golden/kinds/tokenizer');
      assert.strictEqual(tokenizerKind.kind, 'tokenizer');
      assert.ok(tokenizerKind.matches('tokenizer/golden.json'));
      assert.ok(!tokenizerKind.matches('tokenizer/vocab.json'));
      const results = await tokenizerKind.run(fixture('tokenizer', 'golden.json'), { root: fixturesDir, device: 'cpu' });
      assert.strictEqual(results.length, 2 * golden.prompts.length);
      assert.strictEqual(results.length, 248);
      const notPass = results.filter((r) => r.status !== 'PASS');
      assert.deepStrictEqual(notPass, []);
      assert.deepStrictEqual(results.slice(0, 2).map((r) => [r.name, r.metric, r.value, r.tol]), [
        ['prompt0.sd15', 'mismatches', 0, 0],
        ['prompt0.sd2', 'mismatches', 0, 0],
      ]);
    });

    it('reports a wrong id and an unloadable tokenizer as FAIL without throwing', async () => {
      const { tokenizerKind } = require('../../dist/golden/kinds/tokenizer');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-tok-'));
      try {
        const g = { prompts: golden.prompts.slice(0, 2).map((p) => ({ ...p, sd2_sdxl2_input_ids: p.sd2_sdxl2_input_ids.slice() })) };
        g.prompts[1].sd2_sdxl2_input_ids[3] = 5;
        fs.writeFileSync(path.join(dir, 'golden.json'), JSON.stringify(g));
        let r = await tokenizerKind.run(path.join(dir, 'golden.json'), { root: dir, device: 'cpu' });
        assert.ok(r.every((x) => x.status === 'FAIL' && /vocab\.json/.test(x.detail)), 'missing vocab must fail every case');
        assert.strictEqual(r.length, 4);
        for (const f of ['vocab.json', 'merges.txt']) fs.copyFileSync(fixture('tokenizer', f), path.join(dir, f));
        r = await tokenizerKind.run(path.join(dir, 'golden.json'), { root: dir, device: 'cpu' });
        assert.deepStrictEqual(r.map((x) => x.status), ['PASS', 'PASS', 'PASS', 'FAIL']);
        assert.strictEqual(r[3].name, 'prompt1.sd2');
        assert.strictEqual(r[3].value, 1);
        assert.match(r[3].detail, /position 3: got \d+, expected 5/);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('framing', () => {
    it('truncates a long prompt to BOS + 75 tokens + EOS', () => {
      const tok = tokenizers.sd15;
      const r = tok.encodeWithInfo('word '.repeat(200));
      assert.strictEqual(r.ids.length, 77);
      assert.strictEqual(r.ids[0], BOS);
      assert.strictEqual(r.ids[76], EOS);
      assert.strictEqual(r.truncated, true);
      assert.strictEqual(r.numTokens, 200);
      assert.strictEqual(r.eosIndex, 76);
      assert.ok(r.attentionMask.every((m) => m === 1));
      const bang = tokenizers.sd21.encodeWithInfo('word '.repeat(200));
      assert.strictEqual(bang.ids[76], EOS);
      assert.strictEqual(bang.eosIndex, 76);
    });

    it('encodes the empty prompt as BOS, EOS, padding', () => {
      for (const text of ['', '   ', '\u200b']) {
        const r = tokenizers.sd15.encodeWithInfo(text);
        assert.deepStrictEqual(r.ids.slice(0, 3), [BOS, EOS, EOS]);
        assert.strictEqual(r.numTokens, 0);
        assert.strictEqual(r.truncated, false);
        assert.strictEqual(r.eosIndex, 1);
        assert.deepStrictEqual(r.attentionMask.slice(0, 3), [1, 1, 0]);
        const z = tokenizers.sd21.encodeWithInfo(text);
        assert.deepStrictEqual(z.ids, [BOS, EOS].concat(new Array(75).fill(0)));
      }
    });

    it('gives the EOS index and attention mask', () => {
      const r = tokenizers.sd15.encodeWithInfo('a photo of an astronaut riding a horse on mars');
      assert.strictEqual(r.numTokens, 10);
      assert.strictEqual(r.eosIndex, 11);
      assert.strictEqual(r.ids[11], EOS);
      assert.deepStrictEqual(r.attentionMask, new Array(12).fill(1).concat(new Array(65).fill(0)));
      // a literal <|endoftext|> in the prompt is the first EOS (what argmax(input_ids) pools)
      assert.strictEqual(tokenizers.sd15.encodeWithInfo('before <|endoftext|> after').eosIndex, 2);
    });

    it('respects modelMaxLength', () => {
      const t = CLIPTokenizer.fromPretrainedSync(fixture('tokenizer'), { modelMaxLength: 8 });
      const r = t.encodeWithInfo('one two three four five six seven eight');
      assert.strictEqual(r.ids.length, 8);
      assert.strictEqual(r.ids[7], EOS);
      assert.strictEqual(r.truncated, true);
    });

    it('encodes a batch like single prompts', () => {
      const texts = golden.prompts.slice(0, 5).map((p) => p.prompt);
      assert.deepStrictEqual(tokenizers.sd21.encodeBatch(texts), texts.map((t) => tokenizers.sd21.encode(t)));
      assert.deepStrictEqual(tokenizers.sd15.encodeBatch([]), []);
    });

    it('splits "!" out as id 0 only when it is the pad token', () => {
      assert.deepStrictEqual(tokenizers.sd15.tokenize('hi!'), ['hi</w>', '!</w>']);
      assert.deepStrictEqual(tokenizers.sd21.tokenize('hi!'), ['hi</w>', '!']);
      assert.deepStrictEqual(tokenizers.sd21.encode('! !! !!!').slice(0, 8), [BOS, 0, 0, 0, 0, 0, 0, EOS]);
    });
  });

  describe('decode', () => {
    it('round-trips plain lower-case ASCII', () => {
      for (const text of ['a photo of an astronaut riding a horse on mars', 'cyberpunk street at night', 'hello']) {
        assert.strictEqual(tokenizers.sd15.decode(tokenizers.sd15.encode(text)), text);
        assert.strictEqual(tokenizers.sd21.decode(tokenizers.sd21.encode(text)), text);
      }
    });

    it('drops special tokens unless asked, decodes bytes, optionally cleans spaces', () => {
      const t = tokenizers.sd15;
      const ids = t.encode('a cat');
      assert.strictEqual(t.decode(ids.slice(0, 4), { skipSpecialTokens: false }), '<|startoftext|>a cat <|endoftext|>');
      assert.strictEqual(t.decode(t.encode('café 一只 🐱')), 'café 一 只 🐱');
      assert.strictEqual(t.decode(t.encode("it's a cat, ok.")), "it 's a cat , ok .");
      assert.strictEqual(t.decode(t.encode("it's a cat, ok."), { cleanUpTokenizationSpaces: true }), "it's a cat, ok.");
      assert.deepStrictEqual(t.decodeBatch([t.encode('a'), t.encode('b')]), ['a', 'b']);
    });

    it('refuses ids that are not in the vocabulary', () => {
      assert.throws(() => tokenizers.sd15.decode([1, 99999]), TokenizerError);
      assert.throws(() => tokenizers.sd15.decode([1.5]), TokenizerError);
      assert.throws(() => tokenizers.sd15.decode('abc'), TokenizerError);
    });
  });

  describe('bytes and BPE', () => {
    it('the byte-level alphabet is the first 256 vocabulary entries, and round-trips', () => {
      const vocab = JSON.parse(fs.readFileSync(fixture('tokenizer', 'vocab.json'), 'utf8'));
      byteLevelAlphabet().forEach((ch, i) => {
        assert.strictEqual(vocab[ch], i);
        assert.strictEqual(vocab[`${ch}</w>`], 256 + i);
      });
      const s = 'héllo 一 🐱\u0000';
      assert.strictEqual(Buffer.from(fromByteLevel(toByteLevel(s))).toString('utf8'), s);
    });

    it('fromFiles builds a tokenizer from in-memory data', () => {
      const vocab = {};
      byteLevelAlphabet().forEach((ch, i) => {
        vocab[ch] = i;
        vocab[`${ch}</w>`] = 256 + i;
      });
      vocab['ab</w>'] = 512;
      vocab['<|startoftext|>'] = 513;
      vocab['<|endoftext|>'] = 514;
      const t = CLIPTokenizer.fromFiles({ vocab, merges: ['#version: 0.2', 'a b</w>'], modelMaxLength: 6 });
      assert.deepStrictEqual(t.tokenize('AB ba'), ['ab</w>', 'b', 'a</w>']);
      assert.deepStrictEqual(t.encode('ab ab ab ab ab'), [513, 512, 512, 512, 512, 514]);
      assert.deepStrictEqual(t.encode('ab'), [513, 512, 514, 514, 514, 514]);
      const bang = CLIPTokenizer.fromFiles({ vocab, merges: [['a', 'b</w>']], padToken: '!', modelMaxLength: 5 });
      assert.deepStrictEqual(bang.encode('ab!'), [513, 512, 0, 514, 0]);
      // the real files, handed over in memory, give the same ids as the folder
      const real = CLIPTokenizer.fromFiles({
        vocab: JSON.parse(fs.readFileSync(fixture('tokenizer', 'vocab.json'), 'utf8')),
        merges: fs.readFileSync(fixture('tokenizer', 'merges.txt'), 'utf8').split('\n'),
        padToken: '!',
      });
      for (const p of golden.prompts.slice(0, 30)) assert.deepStrictEqual(real.encode(p.prompt), p.sd2_sdxl2_input_ids, p.prompt);
      // a token that is not in the vocabulary maps to the unk token (<|endoftext|>)
      const small = CLIPTokenizer.fromFiles({ vocab: { a: 0, 'a</w>': 1, '<|startoftext|>': 2, '<|endoftext|>': 3 }, merges: [], modelMaxLength: 5 });
      assert.deepStrictEqual(small.encode('a b'), [2, 1, 3, 3, 3]);
    });
  });

  describe('errors', () => {
    let dir;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-tok-'));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    function copyTokenizer() {
      for (const f of ['vocab.json', 'merges.txt']) fs.copyFileSync(fixture('tokenizer', f), path.join(dir, f));
    }

    it('a missing folder is a FileNotFoundError', async () => {
      const missing = path.join(dir, 'nope');
      await assert.rejects(CLIPTokenizer.fromPretrained(missing), (e) => e instanceof FileNotFoundError && e.code === 'ERR_ONESTEP_FILE_NOT_FOUND' && e.path === missing);
      assert.throws(() => CLIPTokenizer.fromPretrainedSync(missing), (e) => e.code === 'ERR_ONESTEP_FILE_NOT_FOUND');
    });

    it('a missing vocab.json or merges.txt is a FileNotFoundError naming it', async () => {
      fs.copyFileSync(fixture('tokenizer', 'merges.txt'), path.join(dir, 'merges.txt'));
      await assert.rejects(CLIPTokenizer.fromPretrained(dir), (e) => e instanceof FileNotFoundError && e.path === path.join(dir, 'vocab.json'));
      fs.rmSync(path.join(dir, 'merges.txt'));
      fs.copyFileSync(fixture('tokenizer', 'vocab.json'), path.join(dir, 'vocab.json'));
      assert.throws(() => CLIPTokenizer.fromPretrainedSync(dir), (e) => e instanceof FileNotFoundError && e.path === path.join(dir, 'merges.txt'));
    });

    it('malformed vocab.json is a TokenizerError naming the file', async () => {
      copyTokenizer();
      const cases = ['{"a": 0, "b": ', '[1, 2]', '{"a": -1}', '{"a": "0"}', '{}'];
      for (const text of cases) {
        fs.writeFileSync(path.join(dir, 'vocab.json'), text);
        await assert.rejects(
          CLIPTokenizer.fromPretrained(dir),
          (e) => e instanceof TokenizerError && e.code === 'ERR_ONESTEP_TOKENIZER' && e.message.includes('vocab.json'),
          text,
        );
      }
      fs.writeFileSync(path.join(dir, 'vocab.json'), Buffer.from([0x7b, 0xff, 0x7d]));
      assert.throws(() => CLIPTokenizer.fromPretrainedSync(dir), /vocab\.json: not valid UTF-8/);
    });

    it('malformed merges.txt and configs are TokenizerErrors naming the file', () => {
      copyTokenizer();
      for (const text of ['', 'i n\nt h', '#version: 0.2\ni n\nt h e\n']) {
        fs.writeFileSync(path.join(dir, 'merges.txt'), text);
        assert.throws(() => CLIPTokenizer.fromPretrainedSync(dir), (e) => e instanceof TokenizerError && e.message.includes('merges.txt'), JSON.stringify(text));
      }
      copyTokenizer();
      for (const [text, re] of [
        ['{"pad_token": ', /tokenizer_config\.json: invalid JSON/],
        ['{"pad_token": 3}', /tokenizer_config\.json: pad_token/],
        ['{"model_max_length": 1e30}', /tokenizer_config\.json: model_max_length/],
        ['[]', /tokenizer_config\.json: must be a JSON object/],
      ]) {
        fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), text);
        assert.throws(() => CLIPTokenizer.fromPretrainedSync(dir), (e) => e instanceof TokenizerError && re.test(e.message), text);
      }
    });

    it('reads pad_token as a string or an AddedToken object; special_tokens_map.json wins', () => {
      copyTokenizer();
      fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ pad_token: { content: '!', __type: 'AddedToken' }, model_max_length: 77 }));
      assert.strictEqual(CLIPTokenizer.fromPretrainedSync(dir).padTokenId, 0);
      fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), JSON.stringify({ pad_token: '<|endoftext|>' }));
      assert.strictEqual(CLIPTokenizer.fromPretrainedSync(dir).padTokenId, EOS);
      assert.strictEqual(CLIPTokenizer.fromPretrainedSync(dir, { padToken: '!' }).padTokenId, 0);
    });

    it('a non-string prompt is a TokenizerError', () => {
      for (const bad of [undefined, null, 42, ['a'], { text: 'a' }]) {
        assert.throws(() => tokenizers.sd15.encode(bad), (e) => e instanceof TokenizerError && e.code === 'ERR_ONESTEP_TOKENIZER');
        assert.throws(() => tokenizers.sd15.tokenize(bad), TokenizerError);
      }
      assert.throws(() => tokenizers.sd15.encodeBatch(['a', 3]), /prompt 1 must be a string/);
      assert.throws(() => tokenizers.sd15.encodeBatch('a'), TokenizerError);
    });

    it('bad fromFiles options are TokenizerErrors', () => {
      assert.throws(() => CLIPTokenizer.fromFiles({ vocab: [], merges: [] }), TokenizerError);
      assert.throws(() => CLIPTokenizer.fromFiles({ vocab: { a: 0 }, merges: 'a b' }), TokenizerError);
      assert.throws(() => CLIPTokenizer.fromFiles({ vocab: { a: 0 }, merges: ['a b c'] }), /merges\[0\]/);
      assert.throws(() => CLIPTokenizer.fromFiles({ vocab: { a: 0 }, merges: [], modelMaxLength: 1 }), TokenizerError);
    });
  });
});
