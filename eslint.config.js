// ESLint (flat config) with typescript-eslint's type-aware rules, run by `make lint` (part of `make test`).
// Lints src/, test/, bench/ and compat/ against tsconfig.test.json (which includes all four).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['dist/**', 'node_modules/**', 'bench/out/**', '.tmp-*/**', 'tmp/**'],
  },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'compat/**/*.ts', '*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        project: './tsconfig.test.json',
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // The point of this config (issue 12): a promise nobody awaits or catches, or one handed to
      // something that expects a plain callback (an EventEmitter listener, a timer), loses its error.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',

      // Unused names: tsc's noUnusedLocals already fails the build on these; `_`-prefixed is allowed.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],

      // Off: the code writes `xs[i]!` / `map.get(k)!` on purpose (ready for noUncheckedIndexedAccess,
      // under which these assertions are needed); without that option the rule flags ~260 of them and
      // its autofix would strip them all.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // Off: async methods without an await implement Promise-returning interfaces (ContentSource,
      // BlobFetcher...) so that a synchronous throw becomes a rejection; rewriting ~30 of them to
      // Promise.resolve/reject would make them worse, not safer.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Plain JS (a child-process script in test/, this file): no type information.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [js.configs.recommended, tseslint.configs.disableTypeChecked],
    languageOptions: {
      // Node's globals (only these are used by the plain JS files).
      globals: Object.fromEntries(
        ['process', 'console', 'Buffer', 'URL', 'setTimeout', 'clearTimeout', 'setImmediate', 'require', 'module'].map((g) => [g, 'readonly']),
      ),
    },
  },
);
