// Lint: typescript-eslint's recommended type-checked rules, floating promises banned
// everywhere, and Node built-ins and the native library banned inside workflows/
// (workflow code must stay deterministic and sandbox-safe).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'module';

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
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: builtinModules.flatMap((m) => [m, `node:${m}`]),
        patterns: [{ group: ['**/native/**', '**/native'], message: 'workflows must not import the native library; call an activity' }],
      }],
    },
  },
);
