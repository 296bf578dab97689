/**
 * `ondemand bench --image REF`: every mount mode this host can serve, and `local` (the same image from
 * complete local files), measured side by side with the same workloads; a table, `--json` (the schema
 * of docs/bench.md) and a self-contained HTML report. The work is in src/bench.
 */
import { writeFileSync } from 'node:fs';
import { defineCommand, out } from '../command.js';
import { cliConfig } from '../config.js';
import { PLATFORM_DEFAULT_HOST, callerCredentials, registryAccess, registryOptions } from '../image-ref.js';
import { renderHtml } from '../../bench/report-html.js';
import { renderText } from '../../bench/report-text.js';
import { DEFAULT_RAND_READS, runBench } from '../../bench/run.js';
import { LARGEST_FILES } from '../../bench/tree.js';
import { WORKLOADS, type Workload } from '../../bench/types.js';
import { MOUNT_MODES } from '../../transport/types.js';
import { BenchError, UsageError } from '../../util/errors.js';

function parseWorkloads(text: string | undefined, withRun: boolean): Workload[] | undefined {
  if (text === undefined) return undefined;
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(WORKLOADS as readonly string[]).includes(n)) throw new UsageError(`--workload: unknown workload ${n} (workloads: ${WORKLOADS.join(', ')})`);
  }
  const list = WORKLOADS.filter((w) => names.includes(w));
  if (list.includes('startup') && !withRun) throw new UsageError('--workload startup needs --run CMD');
  if (list.length === 0) throw new UsageError('--workload names no workload');
  return list;
}

function parseModes(text: string): 'auto' | 'all' | string[] {
  if (text === 'auto' || text === 'all') return text;
  const list = text.split(',').map((s) => s.trim()).filter((s) => s && s !== 'local');
  for (const m of list) {
    if (!(MOUNT_MODES as readonly string[]).includes(m)) throw new UsageError(`--modes: unknown mode ${m} (auto, all, or a list of ${MOUNT_MODES.join(', ')})`);
  }
  return list;
}

function parseReady(text: string | undefined): RegExp | null {
  if (text === undefined) return null;
  try {
    return new RegExp(text);
  } catch (err) {
    throw new UsageError(`--ready: not a regular expression: ${(err as Error).message}`);
  }
}

export const benchCommand = defineCommand({
  command: 'bench',
  describe: 'Measure every mount mode this host can serve against the image mounted from local files (needs root)',
  builder: (y) =>
    registryOptions(y
      .option('image', { type: 'string', demandOption: true, describe: 'The image: oci:PATH[:TAG] or HOST[:PORT]/REPO[:TAG][@DIGEST]' })
      .option('modes', { type: 'string', default: 'auto', describe: `auto (every mode this host can serve), all (${MOUNT_MODES.join(', ')}: those that cannot work are reported failed), or a comma list; local is always measured` })
      .option('workload', { type: 'string', describe: `Comma list of ${WORKLOADS.join(', ')} (default: all; startup only with --run)` })
      .option('runs', { type: 'number', default: 3, describe: 'Runs; modes are interleaved, the order rotating each run; medians are reported' })
      .option('run', { type: 'string', describe: 'Start-up workload: a command run with /bin/sh -c in a chroot of the image (overlay, /proc, /dev; no network)' })
      .option('ready', { type: 'string', describe: 'With --run: the start-up ends when a line of its output matches this regular expression (default: when it exits)' })
      .option('run-timeout', { type: 'number', default: 120, describe: 'With --run: seconds one start-up may take' })
      .option('compare-pull', { type: 'string', describe: 'With --run: the unconverted image (registry reference, or skopeo transport:REF) to pull in full (skopeo copy + umoci unpack) and start the same way' })
      .option('rand-reads', { type: 'number', default: DEFAULT_RAND_READS, describe: '4 KiB reads of the rand1 and rand4 workloads' })
      .option('files', { type: 'number', default: LARGEST_FILES, describe: 'How many of the image\'s largest files the seq and rand workloads read (at most 1 GiB of them)' })
      .option('work-dir', { type: 'string', default: '/var/tmp', describe: 'Where the bench makes its directory (its own daemon\'s run and cache dirs, the local copy, mountpoints); removed at the end. Not tmpfs: fanotify needs a disk filesystem' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the results as JSON (schema: docs/bench.md) instead of the table' })
      .option('report', { type: 'string', describe: 'Also write a self-contained HTML report (charts, host facts) to this file' })
      .option('quiet', { type: 'boolean', default: false, describe: 'No progress lines on stderr' })
      .epilog('Phases: cold = a new mount over an empty cache; warm = a new mount over the complete cache with the page cache dropped; '
        + 'hot = the warm mount again. The bench runs its own daemon (its own run and cache dirs) and never touches the host\'s. '
        + 'Figures: wall time, MiB/s or operations/s, p50/p99 latency, bytes and requests fetched, daemon CPU; every mode as a ratio to local. See docs/bench.md.'),
    PLATFORM_DEFAULT_HOST),
  handler: async (argv) => {
    if (process.getuid?.() !== 0) throw new UsageError('ondemand bench needs root (it mounts images and drops page caches)');
    const withRun = argv.run !== undefined;
    if (argv.ready !== undefined && !withRun) throw new UsageError('--ready goes with --run');
    if (argv.comparePull !== undefined && !withRun) throw new UsageError('--compare-pull needs --run (the start-up it compares)');
    if (!Number.isInteger(argv.runs) || argv.runs < 1) throw new UsageError('--runs must be a whole number of at least 1');
    if (!Number.isInteger(argv.randReads) || argv.randReads < 4) throw new UsageError('--rand-reads must be a whole number of at least 4');
    if (!Number.isInteger(argv.files) || argv.files < 1) throw new UsageError('--files must be a whole number of at least 1');
    if (!(argv.runTimeout > 0)) throw new UsageError('--run-timeout must be more than 0 seconds');
    const workloads = parseWorkloads(argv.workload, withRun);
    const modes = parseModes(argv.modes);
    const ready = parseReady(argv.ready);
    const config = cliConfig();
    const access = await registryAccess(argv, config);
    const credentials = await callerCredentials(argv.image, access);
    const report = await runBench({
      image: argv.image,
      access: { insecure: access.insecure, ...(access.platform !== undefined ? { platform: access.platform } : {}), ...(credentials !== undefined ? { credentials } : {}) },
      config,
      modes,
      ...(workloads ? { workloads } : {}),
      runs: argv.runs,
      ...(withRun ? { run: { command: argv.run!, ready, timeoutMs: argv.runTimeout * 1000 } } : {}),
      ...(argv.comparePull !== undefined ? { comparePull: argv.comparePull } : {}),
      randReads: argv.randReads,
      largestFiles: argv.files,
      workDir: argv.workDir,
      ...(argv.quiet ? {} : { progress: (line: string) => process.stderr.write(`${line}\n`) }),
    });
    if (argv.report !== undefined) writeFileSync(argv.report, renderHtml(report));
    if (argv.json) out(JSON.stringify(report, null, 2));
    else process.stdout.write(renderText(report));
    // The results are out; a failed mode or a mount left behind still makes the command fail (exit 1).
    const failed = report.modes.filter((m) => m.status === 'failed').map((m) => m.mode);
    if (failed.length > 0) throw new BenchError(`${failed.length} mode(s) failed: ${failed.join(', ')} (their errors are in the results)`);
    if (report.leftoverMounts.length > 0) throw new BenchError(`mounts were left behind and detached: ${report.leftoverMounts.join(', ')}`);
  },
});
