// Import rules for src/, checked by `make depcheck` (part of `make test`). See issue 12.
//
// 1. No import cycles between files of src/ — type-only imports count (tsPreCompilationDeps).
// 2. Layering: a folder of src/ may only import itself and the folders listed BELOW it here.
//    Read top to bottom: cli → bench → daemon → config → mount → transport → fuse → cache → fetch → registry, with
//    resolve used by mount and sitting above cache/fetch/registry; convert, copy, reader and build
//    used only by cli; format, native and util underneath everything.
//    A new folder of src/ must be placed here (rule `layer-unknown-folder`).
// 3. src/ never imports tests, benchmarks or the compat harness.
'use strict';

/** folder → the folders it may import (besides itself). */
const layers = {
  cli: ['bench', 'daemon', 'config', 'mount', 'transport', 'fuse', 'resolve', 'cache', 'fetch', 'registry', 'convert', 'copy', 'reader', 'build', 'format', 'native', 'util'],
  // `ondemand bench`: measures the modes through its own daemon (the control protocol) and the mount code.
  bench: ['daemon', 'config', 'mount', 'transport', 'fuse', 'resolve', 'cache', 'fetch', 'registry', 'format', 'native', 'util'],
  daemon: ['config', 'mount', 'transport', 'fuse', 'resolve', 'cache', 'fetch', 'registry', 'format', 'native', 'util'],
  // The configuration file and its resolution (read by the CLI, handed to the daemon): it reads the
  // defaults of the layers it configures, so it sits above them.
  config: ['mount', 'transport', 'fuse', 'resolve', 'cache', 'fetch', 'registry', 'format', 'native', 'util'],
  mount: ['transport', 'fuse', 'resolve', 'cache', 'fetch', 'registry', 'format', 'native', 'util'],
  transport: ['fuse', 'cache', 'fetch', 'registry', 'format', 'native', 'util'],
  fuse: ['cache', 'fetch', 'registry', 'format', 'native', 'util'],
  resolve: ['cache', 'fetch', 'registry', 'format', 'native', 'util'],
  cache: ['fetch', 'registry', 'format', 'native', 'util'],
  fetch: ['registry', 'format', 'native', 'util'],
  registry: ['format', 'native', 'util'],
  // Commands' own work, used only by cli: convert builds (build), copy reads what build writes,
  // reader (check/inspect/export) reads resolved images.
  convert: ['build', 'resolve', 'registry', 'fetch', 'format', 'native', 'util'],
  copy: ['build', 'resolve', 'registry', 'fetch', 'format', 'native', 'util'],
  reader: ['resolve', 'fetch', 'registry', 'format', 'native', 'util'],
  build: ['registry', 'fetch', 'format', 'native', 'util'],
  format: ['util'],
  native: ['util'],
  util: [],
};

const folders = Object.keys(layers);
const alt = (names) => names.join('|');

const layerRules = folders.map((folder) => ({
  name: `layer-${folder}`,
  severity: 'error',
  comment:
    `src/${folder} may only import ` +
    (layers[folder].length ? `src/{${[folder, ...layers[folder]].join(',')}}` : `src/${folder}`) +
    ' (a folder may only import folders below it: see the layers table in .dependency-cruiser.cjs)',
  from: { path: `^src/${folder}/` },
  to: { path: '^src/', pathNot: `^src/(${alt([folder, ...layers[folder]])})/` },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycle between files of src/ (type-only imports count): break it by moving the shared part down a layer.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'layer-unknown-folder',
      severity: 'error',
      comment: 'A file of src/ outside the known folders: place its folder in the layers table of .dependency-cruiser.cjs.',
      from: { path: '^src/', pathNot: `^src/(${alt(folders)})/` },
      to: {},
    },
    {
      name: 'layer-unknown-folder-lone',
      severity: 'error',
      comment: 'A file of src/ outside the known folders (importing and imported by nothing yet): place its folder in the layers table of .dependency-cruiser.cjs.',
      from: { orphan: true, path: '^src/', pathNot: `^src/(${alt(folders)})/` },
      to: {},
    },
    {
      name: 'src-not-to-tests',
      severity: 'error',
      comment: 'src/ must not import tests, benchmarks or the compat harness.',
      from: { path: '^src/' },
      to: { path: '^(test|bench|compat)/' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve (also guards the check itself: if resolution broke, every rule above would pass vacuously).',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/' },
    // Type-only imports (`import type`, `export type ... from`) are dependencies too.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
