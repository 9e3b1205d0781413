// Crash durability (issue 12): 32 single-writer clients write, overwrite and remove keys (small
// values and 1 MiB ones; single calls, Mutate batches and Txns) while the harness SIGKILLs the
// server at random moments and restarts it on the same files. After every kill, with the server
// dead, both tiers' files hold for every key an acceptable state (the last acknowledged mutation's,
// or an unacknowledged later one's) with whole values and whole Txns; after the restart and the
// ledger's replay the backup equals the primary, and reads through the server agree.
//
// Variants: SQLite primary and backup in one process; a chained backup instance (B killed too,
// restarted on the same port); a PostgreSQL primary (the run's embedded server, or TIERKV_TEST_PG_URL's).
// CI mode runs a bounded number of kills; TIERKV_TORTURE_MINUTES runs them for a time share.
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { connectPostgres, sharedPostgres } from "../support/postgres.js";
import { removeTempDirs, tempDir } from "../support/temp.js";
import { AcceptableStates, type Observed, type Snapshot } from "./support/acceptable.js";
import {
  assertNoViolations,
  between,
  budget,
  clientTier,
  Instance,
  Load,
  LONG_MODE,
  postgresTier,
  report,
  resync,
  sleep,
  sqliteTier,
  testTimeout,
  waitOwedZero,
  type LoadOptions,
  type TierReader,
  type TortureTest,
} from "./support/harness.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  removeTempDirs();
});

const LOAD: LoadOptions = {
  writers: 32,
  keysPerWriter: 16,
  // Generous: the machine is shared. A kill fails the calls in flight at once anyway.
  deadlineMs: 30_000,
  hangAfterMs: 30_000,
  maxSmallBytes: 2048,
  bigEvery: 4,
  bigBytes: 1024 * 1024,
  bigChance: 0.05,
  mix: { write: 50, remove: 15, mutate: 20, txn: 15 },
  writersPerClient: 4,
};

/** The load's first moments after a (re)start, before the next kill. */
const LOAD_MS: [number, number] = [200, 800];

interface Tiers {
  readonly primary: TierReader;
  readonly backup: TierReader;
}

interface CrashStats {
  /** How long each restart took until the server listened again. */
  restartMs: number[];
  /** Keys whose last (unacknowledged) mutation reached the backup and not the crashed primary. */
  backupAhead: number;
  /** Keys equal in value and version whose revisions differ. */
  revisionOnly: number;
  examples: string[];
  maxReplayMs: number;
  checks: number;
  /** Where the time went, ms in all: load before kills, checks of the dead files, restarts, checks after. */
  phases: { load: number; crashChecks: number; restarts: number; recoveryChecks: number };
}

/** Strict equality of two views of the same tier (file and reads through the server). */
function sameContents(x: Snapshot, y: Snapshot, what: string): string[] {
  const differences: string[] = [...y.corrupt.map((c) => `${what}: ${c}`)];
  const show = (o: Observed | undefined): string => (o === undefined ? "absent" : `${o.tag} v${o.version} r${o.revision}`);
  for (const path of new Set([...x.rows.keys(), ...y.rows.keys()])) {
    const a = x.rows.get(path);
    const b = y.rows.get(path);
    if (show(a) !== show(b)) differences.push(`${what}: ${path} is ${show(b)}, the file has ${show(a)}`);
  }
  return differences;
}

class CrashRun {
  readonly model = new AcceptableStates();
  readonly load: Load;
  readonly stats: CrashStats = {
    restartMs: [],
    backupAhead: 0,
    revisionOnly: 0,
    examples: [],
    maxReplayMs: 0,
    checks: 0,
    phases: { load: 0, crashChecks: 0, restarts: 0, recoveryChecks: 0 },
  };
  private readonly started = Date.now();

  constructor(
    readonly test: TortureTest,
    readonly tiers: Tiers,
  ) {
    this.load = new Load(this.model, LOAD);
    cleanup.push(() => this.load.stop());
  }

  private violations(): string[] {
    return [...this.model.violations, ...this.load.violations];
  }

  /** With the writers parked and the server (or the backup) dead: both tiers hold acceptable states. */
  async checkAfterCrash(when: string): Promise<void> {
    this.model.check(`primary file ${when}`, await this.tiers.primary());
    this.model.check(`backup file ${when}`, await this.tiers.backup(), "backup");
    this.stats.checks++;
    assertNoViolations(this.violations(), when);
  }

  /**
   * After the restart: the ledger replay leaves nothing owed, the backup equals the primary (a
   * backup ahead of the crashed primary is counted, then repaired by a resync, contract §4.6),
   * and reads through the server see the primary's file.
   */
  async checkRecovered(a: Instance, when: string): Promise<void> {
    this.stats.maxReplayMs = Math.max(this.stats.maxReplayMs, await waitOwedZero(a.address, 90_000));
    const primary = await this.tiers.primary();
    let backup = await this.tiers.backup();
    const viaServer = await clientTier(a.address, this.load.paths());
    this.model.check(`primary after replay (${when})`, primary);
    this.model.check(`backup after replay (${when})`, backup, "backup");
    this.model.violations.push(...sameContents(primary, viaServer, `reads through A (${when})`));
    const { ahead, revisionOnly } = this.model.compare(primary, backup, `after replay (${when})`);
    this.stats.backupAhead += ahead.length;
    this.stats.revisionOnly += revisionOnly.length;
    for (const example of [...ahead, ...revisionOnly]) if (this.stats.examples.length < 5) this.stats.examples.push(example);
    if (ahead.length + revisionOnly.length > 0) {
      // Known and reported (see the finding in the issue 12 report): repaired by a resync here so
      // later checks start from equal tiers; what the resync leaves different is a violation.
      await resync(a.address);
      backup = await this.tiers.backup();
      const again = this.model.compare(primary, backup, `after resync (${when})`);
      this.model.violations.push(...[...again.ahead, ...again.revisionOnly].map((d) => `after resync (${when}): backup still differs: ${d}`));
    }
    this.stats.checks++;
    assertNoViolations(this.violations(), when);
    this.model.collapse(primary);
  }

  /**
   * After a restart, without waiting for the replay: reads through the server see the primary's
   * file, and every state is acceptable. The sets of acceptable states keep the unacknowledged
   * mutations (no collapse), so the next crash check stays sound while the replay runs.
   */
  async checkRestarted(a: Instance, when: string): Promise<void> {
    const viaServer = await clientTier(a.address, this.load.paths());
    const primary = await this.tiers.primary();
    this.model.check(`reads through A (${when})`, viaServer);
    this.model.violations.push(...sameContents(primary, viaServer, `reads through A (${when})`));
    this.model.replayMayBeInterrupted();
    this.stats.checks++;
    assertNoViolations(this.violations(), when);
  }

  /** Stops the load; with everything settled, one last strict comparison. */
  async finish(a: Instance): Promise<void> {
    await this.load.stop();
    await this.checkRecovered(a, "at the end");
    const exit = await a.stop();
    expect(exit, "a clean shutdown after the crashes").toEqual({ code: 0, signal: null });
    const primary = await this.tiers.primary();
    const backup = await this.tiers.backup();
    this.model.check("primary file after a clean stop", primary);
    const { ahead, revisionOnly } = this.model.compare(primary, backup, "after a clean stop");
    this.model.violations.push(...[...ahead, ...revisionOnly].map((d) => `after a clean stop: backup differs: ${d}`));
    assertNoViolations(this.violations(), "at the end");
    expect(this.model.stats.acknowledged).toBeGreaterThan(0);
  }

  report(kills: Record<string, number>): void {
    const { stats } = this.model;
    report(this.test, {
      kills,
      acknowledgedMutations: stats.acknowledged,
      acknowledgedChecked: stats.acknowledgedChecked,
      unacknowledgedMutations: stats.unacknowledged,
      keyStateChecks: stats.keyChecks,
      unacknowledgedTxnsCheckedForAtomicity: stats.txnsChecked,
      calls: this.load.stats.calls,
      callErrors: this.load.stats.errors,
      crashChecks: this.stats.checks,
      backupAheadAfterReplay: this.stats.backupAhead,
      revisionOnlyDifferencesAfterReplay: this.stats.revisionOnly,
      differenceExamples: this.stats.examples,
      maxReplayMs: this.stats.maxReplayMs,
      meanRestartMs: Math.round(this.stats.restartMs.reduce((x, y) => x + y, 0) / Math.max(1, this.stats.restartMs.length)),
      phaseSeconds: Object.fromEntries(Object.entries(this.stats.phases).map(([phase, ms]) => [phase, Math.round(ms / 1000)])),
      seconds: Math.round((Date.now() - this.started) / 1000),
    });
  }
}

/**
 * Kills `a` (and `also`) at a random moment of the load, checks the files, restarts, and checks
 * the recovery: after the replay (`replay`), or at once through the server.
 */
async function killPrimary(run: CrashRun, a: Instance, options: { also?: Instance; replay: boolean }): Promise<void> {
  const { also } = options;
  const { phases } = run.stats;
  let mark = Date.now();
  const lap = (phase: keyof typeof phases): void => {
    phases[phase] += Date.now() - mark;
    mark = Date.now();
  };
  await sleep(between(...LOAD_MS));
  const parked = run.load.pause();
  await Promise.all([a.kill(), also?.kill()]);
  await parked;
  lap("load");
  const when = `after kill ${a.kills} of A${also ? ` and kill ${also.kills} of B` : ""}`;
  await run.checkAfterCrash(when);
  lap("crashChecks");
  if (also) await also.start();
  await a.start();
  run.stats.restartMs.push(Date.now() - mark);
  lap("restarts");
  run.load.target(a.address);
  if (options.replay) await run.checkRecovered(a, when);
  else await run.checkRestarted(a, when);
  lap("recoveryChecks");
  run.load.resume();
}

const REPLAY_EVERY = LONG_MODE ? 2 : 4;

/** Primary A with its backup in the same process: every kill hits both tiers' commits. */
const SQLITE_TEST: TortureTest = "crash: sqlite primary and backup";
it(
  `${SQLITE_TEST}: 32 clients, ≥ 20 SIGKILLs of A, nothing acknowledged lost, nothing torn`,
  async () => {
    const dir = tempDir("tierkv-crash-");
    const files = { a: join(dir, "a.db"), b: join(dir, "b.db") };
    const a = new Instance("A", () => ["--primary", `sqlite:${files.a}`, "--backup", `sqlite:${files.b}`]);
    cleanup.push(() => a.destroy());
    const run = new CrashRun(SQLITE_TEST, { primary: sqliteTier(files.a), backup: sqliteTier(files.b) });
    await a.start();
    run.load.target(a.address);
    run.load.start();
    const plan = budget(SQLITE_TEST, 20);
    // Every restart is checked through the server; every REPLAY_EVERY-th also waits for the
    // replay and compares the tiers (CI time is spent on kills rather than on waiting).
    try {
      while (plan.more(a.kills)) await killPrimary(run, a, { replay: (a.kills + 1) % REPLAY_EVERY === 0 });
      await run.finish(a);
    } finally {
      run.report({ A: a.kills });
    }
    expect(a.kills).toBeGreaterThanOrEqual(20);
  },
  testTimeout(SQLITE_TEST, 240_000),
);

/** A chained backup instance B: A and B killed in turn (and together), B always on its port. */
const CHAINED_TEST: TortureTest = "crash: chained backup instance";
it(
  `${CHAINED_TEST}: A and B SIGKILLed in turn; after the replay B equals A`,
  async () => {
    const dir = tempDir("tierkv-crash-");
    const files = { a: join(dir, "a.db"), b: join(dir, "b.db") };
    const b = new Instance("B", () => ["--primary", `sqlite:${files.b}`], { samePort: true });
    cleanup.push(() => b.destroy());
    await b.start();
    const a = new Instance("A", () => ["--primary", `sqlite:${files.a}`, "--backup", `grpc://${b.address}`]);
    cleanup.push(() => a.destroy());
    const run = new CrashRun(CHAINED_TEST, { primary: sqliteTier(files.a), backup: sqliteTier(files.b) });
    await a.start();
    run.load.target(a.address);
    run.load.start();

    const pattern = ["A", "B", "both", "B", "A"] as const;
    const plan = budget(CHAINED_TEST, pattern.length);
    try {
      for (let event = 0; plan.more(event); event++) {
        const which = pattern[event % pattern.length]!;
        if (which === "A") await killPrimary(run, a, { replay: true });
        else if (which === "both") await killPrimary(run, a, { also: b, replay: true });
        else {
          // B dies under load and stays down a while (A fails the writes: required policy).
          await sleep(between(...LOAD_MS));
          await b.kill();
          await sleep(between(200, 500));
          const parked = run.load.pause();
          await parked;
          const when = `after kill ${b.kills} of B`;
          await run.checkAfterCrash(when);
          const restarting = Date.now();
          await b.start();
          run.stats.restartMs.push(Date.now() - restarting);
          await run.checkRecovered(a, when);
          run.load.resume();
        }
      }
      await run.finish(a);
    } finally {
      run.report({ A: a.kills, B: b.kills });
    }
    expect(a.kills).toBeGreaterThanOrEqual(3);
    expect(b.kills).toBeGreaterThanOrEqual(3);
    await b.stop();
  },
  testTimeout(CHAINED_TEST, 240_000),
);

/** PostgreSQL primary (the run's server, test/support/postgres.ts), SQLite backup. */
const POSTGRES_TEST: TortureTest = "crash: postgres primary";
it(
  `${POSTGRES_TEST}: ≥ 5 SIGKILLs of A with a PostgreSQL primary`,
  async () => {
    const postgres = connectPostgres(sharedPostgres());
    cleanup.push(() => postgres.stop());
    const uri = await postgres.createDatabase();
    const dir = tempDir("tierkv-crash-");
    const backupFile = join(dir, "b.db");
    const a = new Instance("A", () => ["--primary", uri, "--backup", `sqlite:${backupFile}`]);
    cleanup.push(() => a.destroy());
    const primary = postgresTier((sql) => postgres.admin(sql, [], uri));
    const run = new CrashRun(POSTGRES_TEST, { primary, backup: sqliteTier(backupFile) });
    await a.start();
    run.load.target(a.address);
    run.load.start();
    const plan = budget(POSTGRES_TEST, 5);
    try {
      while (plan.more(a.kills)) await killPrimary(run, a, { replay: (a.kills + 1) % 2 === 0 });
      await run.finish(a);
    } finally {
      run.report({ A: a.kills });
    }
    expect(a.kills).toBeGreaterThanOrEqual(5);
  },
  testTimeout(POSTGRES_TEST, 240_000),
);
