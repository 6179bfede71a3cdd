// Lint gate: typed TypeScript rules, `node:` imports for built-ins, naming conventions, the
// walls between the folders of src/ (docs/architecture.md, "Which folder may import which"), and
// no bare Error in product code (every error comes from the registry in src/core/errors.ts).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import nodePlugin from 'eslint-plugin-n';

// The rooms of src/, each with the rooms it may import (besides itself). Anything not listed is a
// wall. Room names are path segments that occur nowhere else in src/, so a specifier naming one
// (`../store/client.js`, `../../core/errors.js`) is an import of that room.
const rooms = {
  native: [],
  core: ['native'],
  protocol: ['core'],
  'http-core': ['core', 'protocol'],
  store: ['native', 'core', 'protocol', 'http-core'],
  'header-mode': ['native', 'core', 'protocol', 'http-core', 'store'],
  'stream-mode': ['native', 'core', 'protocol', 'http-core', 'store'],
  'direct-mode': ['native', 'core', 'protocol', 'http-core', 'store'],
  tiers: ['native', 'core', 'protocol', 'http-core', 'store', 'header-mode'],
  loadgen: ['core'],
  demo: ['core', 'loadgen'],
  cli: [
    'native',
    'core',
    'protocol',
    'http-core',
    'store',
    'header-mode',
    'stream-mode',
    'tiers',
    'loadgen',
    'demo',
  ],
};
// Inside stream mode: the application thread and the agent worker meet only in the agent's
// message types (agent/protocol.ts); memory and config are below both.
const streamRooms = {
  config: [],
  memory: ['config'],
  agent: ['config', 'memory'],
  app: ['config', 'memory', 'agent/protocol'],
};
// What nothing shipped may import: the dev harness, the tests, the benchmarks.
const unshipped = {
  regex: '(^|/)(dev|test|bench|examples)/',
  message: 'src/ ships; dev/, test/, bench/ and examples/ do not',
};
const segment = (names) => `(^|/)(${names.join('|')})(/|\\.js$)`;
const wall = (from, names, where) => ({
  regex: segment(names),
  message: `${from} may not import ${where}: see docs/architecture.md, "Which folder may import which"`,
});
const roomWalls = Object.entries(rooms).map(([room, allowed]) => {
  const banned = Object.keys(rooms).filter((r) => r !== room && !allowed.includes(r));
  return {
    files: [`src/${room}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            unshipped,
            ...(banned.length ? [wall(`src/${room}`, banned, banned.join(', '))] : []),
          ],
        },
      ],
    },
  };
});
const streamWalls = Object.entries(streamRooms).map(([room, allowed]) => {
  const banned = Object.keys(streamRooms).filter((r) => r !== room && !allowed.includes(r));
  const bannedRooms = Object.keys(rooms).filter(
    (r) => !rooms['stream-mode'].includes(r) && r !== 'stream-mode',
  );
  // agent/protocol is the only file of a sibling room that may be named.
  const exceptions = allowed.filter((a) => a.includes('/'));
  const siblings = banned.concat(exceptions.map((e) => e.split('/')[0]));
  const siblingRegex = `(^|/)(${siblings.join('|')})/(?!(${exceptions.map((e) => e.split('/')[1]).join('|') || '$^'})\\.js$)`;
  return {
    files: [`src/stream-mode/${room}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            unshipped,
            wall(`src/stream-mode`, bannedRooms, bannedRooms.join(', ')),
            {
              regex: siblingRegex,
              message: `src/stream-mode/${room} may import only ${allowed.join(', ') || 'nothing'} of stream mode`,
            },
          ],
        },
      ],
    },
  };
});

export default tseslint.config(
  {
    ignores: ['dist/', 'build/', 'node_modules/', 'docs/results/', 'bench/out/', '.transparency/'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { n: nodePlugin },
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        URL: 'readonly',
      },
    },
    rules: {
      'n/prefer-node-protocol': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/naming-convention': [
        'error',
        { selector: 'typeLike', format: ['PascalCase'] },
        { selector: 'function', format: ['camelCase'] },
        { selector: 'classProperty', modifiers: ['private'], format: ['camelCase'] },
      ],
      eqeqeq: ['error', 'always'],
      'no-console': 'off',
    },
  },
  ...roomWalls,
  ...streamWalls,
  {
    files: ['src/index.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [unshipped, wall('src/index.ts', ['cli', 'demo'], 'the command line')] },
      ],
    },
  },
  {
    files: ['dev/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: '(^|/)(test|bench)/', message: 'dev/ is below the tests and the benchmarks' },
          ],
        },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "NewExpression[callee.name='Error'], CallExpression[callee.name='Error']",
          message: 'a bare Error has no code: use an error of the registry (src/core/errors.ts)',
        },
      ],
    },
  },
);
