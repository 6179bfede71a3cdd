/**
 * Reads the TAP a suite's runner printed into one outcome per test. The three runners differ:
 * node --test nests subtests (4 spaces a level, announced by `# Subtest: name`, the parent's
 * result after its children's) and names a test's file only when it fails (YAML `location`), so
 * ids never use it: the file comes from the caller (one run per file); ava and mocha print flat lines (`ok 3 - file › title`, `ok 3 suite title`). A parent is not counted
 * as a test (its children are), unless it failed with no failing child: then it is the failure
 * (a hook, an uncaught exception, a file that crashed or never finished).
 */

export type Status = 'pass' | 'fail' | 'skip';

/** One test as the runner reported it. */
export interface TestOutcome {
  /** Stable across runs: file (when known), the names of its parents and its own, and `#n` for a repeat. */
  readonly id: string;
  readonly status: Status;
  /** The runner's diagnostic lines (error, stack) for a failure; empty otherwise. */
  readonly detail: readonly string[];
}

const resultLine = /^(\s*)(not ok|ok)\b(?:\s+\d+)?(?:\s+-)?\s*(.*)$/;
const subtestLine = /^(\s*)# Subtest: (.*)$/;
// A directive starts at an unescaped `#` (node --test escapes a `#` in a name as `\#`).
const directive = /(?<!\\)#\s*(SKIP|TODO)\b.*$/i;

interface Pending {
  readonly level: number;
  readonly name: string;
  readonly parents: readonly string[];
  readonly failed: boolean;
  readonly skipped: boolean;
  readonly hadChildren: boolean;
  readonly childFailed: boolean;
  readonly detail: string[];
}

function levelOf(indent: string): number {
  return Math.floor(indent.length / 4);
}

/** Parses TAP text; `root` (the suite's directory) is cut from paths so ids do not depend on it. */
export function parseTap(text: string, root: string): TestOutcome[] {
  const cut = (s: string) => s.split(`${root}/`).join('');
  const subtestNames: string[] = [];
  // Per level: did a result at a deeper level arrive since the last result at this level?
  const childSeen: boolean[] = [];
  const childFailedAt: boolean[] = [];
  const pending: Pending[] = [];
  let current: Pending | undefined;

  for (const line of text.split('\n')) {
    const subtest = subtestLine.exec(line);
    if (subtest) {
      const level = levelOf(subtest[1]!);
      subtestNames.length = level;
      subtestNames[level] = subtest[2]!;
      current = undefined;
      continue;
    }
    const result = resultLine.exec(line);
    if (result) {
      const level = levelOf(result[1]!);
      const raw = result[3]!;
      const marker = directive.exec(raw);
      const name = (marker ? raw.slice(0, marker.index) : raw).trim().replace(/\\#/g, '#');
      const failed = result[2] === 'not ok' && !marker?.[1]?.match(/TODO/i);
      current = {
        level,
        name: cut(name),
        parents: subtestNames.slice(0, level).map(cut),
        failed,
        skipped: marker !== null,
        hadChildren: childSeen[level] === true,
        childFailed: childFailedAt[level] === true,
        detail: [],
      };
      pending.push(current);
      childSeen.length = level;
      childFailedAt.length = level;
      for (let up = 0; up < level; up++) {
        childSeen[up] = true;
        if (failed) childFailedAt[up] = true;
      }
      continue;
    }
    // Indented lines after a result are its diagnostics (YAML for node and ava, text for mocha);
    // a nested plan (`    1..3`) closes them.
    if (current && /^\s+\S/.test(line) && !/^\s*\d+\.\.\d+\s*$/.test(line))
      current.detail.push(line);
    else if (line.trim() !== '') current = undefined;
  }
  return name(pending, cut);
}

/** What a reader needs of a failure: the YAML without its timing. */
function excerpt(detail: readonly string[]): string[] {
  const lines = detail.filter((l) => !/^\s*(---|\.\.\.)\s*$/.test(l));
  if (lines.length === 0) return [];
  const indent = Math.min(...lines.map((l) => /^\s*/.exec(l)![0].length));
  return lines
    .map((l) => l.slice(indent).trimEnd())
    .filter((l) => l !== '')
    .filter((l) => !/^(duration_ms|type):/.test(l));
}

function name(pending: readonly Pending[], cut: (s: string) => string): TestOutcome[] {
  const seen = new Map<string, number>();
  const out: TestOutcome[] = [];
  for (const test of pending) {
    const counted = !test.hadChildren || (test.failed && !test.childFailed);
    if (!counted) continue;
    const base = [...test.parents, test.name].filter((p) => p !== '').join(' > ');
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    const status: Status = test.skipped ? 'skip' : test.failed ? 'fail' : 'pass';
    out.push({
      id: n === 1 ? base : `${base} #${n}`,
      status,
      detail: status === 'fail' ? excerpt(test.detail).map(cut) : [],
    });
  }
  return out;
}
