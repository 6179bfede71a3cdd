// Stream mode's promise is that a program under `--import odb/register` observes nothing new.
// Each scenario (test/fixtures/transparency/) prints what it observed as one JSON line; it is run
// plainly and under the layer in three configurations, as a user would set NODE_OPTIONS for a
// whole service, and must print the same. Real processes, real TLS (a test CA), real HTTP/2;
// bytes checked by SHA-256 inside the scenarios. The layer must also be engaged (ODB frames sent),
// or the comparison would prove nothing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { freePort } from '../../dev/harness/free-port.js';
import { packageRoot } from '../../dev/harness/node-program.js';
import { workspace } from '../helpers/fixtures.js';
import { makeTestPki, type TestPki } from '../helpers/tls.js';

const ws = workspace('odb-transparency-');
const keyFile = ws.keyFile;
let pki: TestPki;

before(() => {
  pki = makeTestPki(ws.dir);
});
after(() => ws.cleanup());

const fixture = (name: string): string =>
  fileURLToPath(new URL(`../../../test/fixtures/transparency/${name}`, import.meta.url));

interface Run {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
}

function runNode(args: string[], env: Record<string, string>): Promise<Run> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('ODB_') && k !== 'NODE_OPTIONS'),
  );
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      { cwd: packageRoot, env: { ...clean, ...env }, timeout: 30_000, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? null) : 0;
        resolve({ stdout, stderr, code: typeof code === 'number' ? code : null });
      },
    );
  });
}

/** The layer's settings per configuration; `ports`: the scenario's ODB ports, for the list. */
function configurations(ports: number[]): Record<string, Record<string, string>> {
  return {
    'ODB_LISTEN=* ODB_CONNECT=* threshold 64KiB': { ODB_LISTEN: '*', ODB_CONNECT: '*' },
    // A long gather wait makes a paced writer's pace visible (read-shape.mjs).
    'ODB_LISTEN=* ODB_CONNECT=* threshold 1KiB': {
      ODB_LISTEN: '*',
      ODB_CONNECT: '*',
      ODB_THRESHOLD: '1KiB',
      ODB_GATHER_WAIT: '100ms',
    },
    'explicit ports, fixed store port, threshold 1KiB': {
      ODB_LISTEN: ports.join(','),
      ODB_CONNECT: ports.map((p) => `:${p}`).join(','),
      ODB_THRESHOLD: '1KiB',
      ODB_GATHER_WAIT: '100ms',
    },
  };
}

/**
 * Scenarios: `odbPorts` names the scenario's ports that speak ODB in the explicit configuration
 * (an HTTPS port never does: TLS is end to end); `engaged`: ODB frames must have been sent.
 */
const scenarios: { file: string; odbPorts: ('PORT_A' | 'PORT_B')[]; engaged: boolean }[] = [
  { file: 'tls.mjs', odbPorts: ['PORT_B'], engaged: true },
  { file: 'exceptions.mjs', odbPorts: ['PORT_A', 'PORT_B'], engaged: true },
  // HTTP/2 reads its socket natively: it stays plain, byte for byte (docs/stream-mode.md).
  { file: 'http2.mjs', odbPorts: ['PORT_A'], engaged: false },
  { file: 'timeouts.mjs', odbPorts: ['PORT_A', 'PORT_B'], engaged: true },
  { file: 'read-shape.mjs', odbPorts: ['PORT_A', 'PORT_B'], engaged: true },
  { file: 'children.mjs', odbPorts: ['PORT_A'], engaged: false },
  { file: 'tee.mjs', odbPorts: ['PORT_A', 'PORT_B'], engaged: true },
  { file: 'connections.mjs', odbPorts: ['PORT_A'], engaged: true },
  // Its peers run without the layer: nothing ODB may reach them.
  { file: 'plain-peers.mjs', odbPorts: ['PORT_A'], engaged: false },
];

for (const scenario of scenarios) {
  test(`${scenario.file}: the same observations plainly and under the layer, in every configuration`, async () => {
    const ports = { PORT_A: String(await freePort()), PORT_B: String(await freePort()) };
    const base = { ...ports, TLS_KEY: pki.key, TLS_CERT: pki.cert, TLS_CA: pki.ca };
    const plain = await runNode([fixture(scenario.file)], base);
    assert.equal(plain.code, 0, `plain run failed: ${plain.stderr}`);
    const expected = plain.stdout.trim();
    assert.match(expected, /^\{.*\}$/, 'the scenario reports one JSON line');
    assert.doesNotMatch(expected, /false/, `the scenario failed plainly: ${expected}`);

    const odbPorts = scenario.odbPorts.map((p) => Number(ports[p]));
    const storePort = await freePort();
    for (const [name, settings] of Object.entries(configurations(odbPorts))) {
      const env: Record<string, string> = {
        ...base,
        ...settings,
        ODB_KEY_FILE: keyFile,
        NODE_OPTIONS: `--import odb/register --import ${fixture('report-stats.mjs')}`,
      };
      // A fixed store port, as services configure it: children inherit it (children.mjs).
      if (name.startsWith('explicit')) env.ODB_STORE_LISTEN = `127.0.0.1:${storePort}`;
      const layered = await runNode([fixture(scenario.file)], env);
      const context = `${scenario.file}, ${name}:\n${layered.stderr}`;
      assert.equal(layered.code, 0, `exit status ${layered.code}, ${context}`);
      assert.equal(layered.stdout.trim(), expected, context);
      assert.doesNotMatch(layered.stderr, /OdbError|ODB_ERR_/, context);
      const stats = layered.stderr.match(/^odb-stats (.*)$/m);
      assert.ok(stats, `the layer was installed: ${context}`);
      const { sentReal, sentVirtual } = JSON.parse(stats[1]!) as Record<string, number>;
      if (scenario.engaged)
        assert.ok(sentReal! + sentVirtual! > 0, `ODB frames were sent: ${context}`);
    }
  });
}
