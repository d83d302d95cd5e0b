// The top-level folders of a fixture tree (../shared/fixtures and every tree laid out like it):
// the one list the runner, the kinds and the test that reads the fixture READMEs share. A folder
// of a fixture tree that is not here is a failure of the run, not something skipped.

export interface FixtureFolder {
  name: string;
  /** 'data': models and files that cases refer to (no case of its own); otherwise the kind of case files it holds */
  kind: 'data' | 'network' | 'tokenizer' | 'rng' | 'scheduler';
  /** files of a case folder that are not cases themselves (paths relative to the folder); any other file no kind claims is a failure */
  aux?: RegExp;
}

export const FIXTURE_FOLDERS: readonly FixtureFolder[] = [
  { name: 'models', kind: 'data' },
  { name: 'lora', kind: 'data' },
  { name: 'single_file', kind: 'data' },
  { name: 'configs', kind: 'data' },
  { name: 'golden', kind: 'network', aux: /^index\.json$/ },
  { name: 'sizes', kind: 'network', aux: /^index\.json$/ },
  { name: 'controlnet', kind: 'network', aux: /^index\.json$/ },
  { name: 'tokenizer', kind: 'tokenizer', aux: /^(vocab\.json|merges\.txt)$/ },
  { name: 'rng', kind: 'rng', aux: /^rng\.safetensors$/ },
  { name: 'schedulers', kind: 'scheduler', aux: /^(index\.json|tables\/[^/]+|cases\/[^/]+\.safetensors)$/ },
];

export const FIXTURE_FOLDER_NAMES: readonly string[] = FIXTURE_FOLDERS.map((f) => f.name);

/** The folders that hold cases. */
export const CASE_FOLDERS: readonly FixtureFolder[] = FIXTURE_FOLDERS.filter((f) => f.kind !== 'data');
