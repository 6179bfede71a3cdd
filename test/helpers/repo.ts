import { fileURLToPath } from 'node:url';

/** The repository root (tests run from dist/test/…). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** Property-test runs: small in the default run, large under `npm run fuzz`. */
export const fuzzRuns = Number(process.env.ODB_FUZZ_RUNS ?? 2000);
