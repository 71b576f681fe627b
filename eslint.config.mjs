// Lint: typescript-eslint's recommended type-checked rules, floating promises banned
// everywhere, and the layering between the top-level folders (below).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'module';

const NODE_BUILTINS = builtinModules.flatMap((m) => [m, `node:${m}`]);
// Import patterns for a top-level folder seen from one or two levels below the root.
const above = (folder) => [`../${folder}`, `../${folder}/**`, `../../${folder}`, `../../${folder}/**`];
const TOP = ['activities', 'workflows', 'native', 'common', 'scripts', 'infra', 'test'];
const outside = (...allowed) => TOP.filter((f) => !allowed.includes(f)).flatMap(above);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native/build/**', '.cache/**', 'eslint.config.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    // Plain CommonJS scripts that run before the TypeScript build.
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', process: 'readonly', console: 'readonly', __dirname: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  // Layering (docs/architecture.md): common/ imports nothing of ours; native/ only common/;
  // workflows/ common/ and activity types; activities/ common/ and native/; infra/ common/.
  {
    files: ['common/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: NODE_BUILTINS,
        patterns: [{ group: ['../*', '../**'], message: 'common/ is plain TypeScript that imports nothing of ours outside common/' }],
      }],
    },
  },
  {
    files: ['native/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: outside('common'), message: 'native/ may import only common/' }],
      }],
    },
  },
  {
    files: ['activities/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: [...above('workflows'), ...above('scripts'), ...above('test'), ...above('infra')], message: 'activities/ import common/ and native/ only (workflows call activities, not the other way)' }],
      }],
    },
  },
  {
    // infra/ starts services and holds the deployment files: it imports none of ours but
    // common/, so the services and the chart's checks stand apart from the CLI.
    files: ['infra/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: outside('common', 'infra'), message: 'infra/ may import only common/' }],
      }],
    },
  },
  {
    // Workflow code must stay deterministic and sandbox-safe: no Node built-ins, no native
    // library, and activities as types only (proxyActivities<typeof activities>).
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        paths: NODE_BUILTINS,
        patterns: [
          { group: above('native'), message: 'workflows must not import the native library; call an activity' },
          { group: above('activities'), allowTypeImports: true, message: 'workflows import activities as types only (import type * as activities)' },
          { group: [...above('scripts'), ...above('infra'), ...above('test')], message: 'workflows import common/ and activity types only' },
        ],
      }],
    },
  },
);
