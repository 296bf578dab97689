/**
 * `make compat`: builds the compat kernels when not cached, runs every scenario (or those whose name
 * contains argv[2]) in its own VM and prints kernel × mode × scenario × result, the kernel named by the
 * release the guest ran and its variant (6.1.192, 6.1.192-no-ondemand, 5.10.262, 6.12.118). Exit 1 if
 * any fails. COMPAT_VERBOSE=1 prints the guest's stdout/stderr for every scenario (always for failures).
 */
import { assertGuestVisible, ensureKernel, kernelLabel, kernelName, kernelRelease, type KernelSpec } from './vm.js';
import { loadScenarios, runScenario } from './scenarios.js';

async function main(): Promise<number> {
  assertGuestVisible();
  const scenarios = loadScenarios(process.argv[2]);
  const kernels = new Map<string, KernelSpec>(scenarios.map((s) => [kernelName(s.kernel), s.kernel]));
  for (const [name, k] of kernels) {
    const started = Date.now();
    const path = await ensureKernel(k, (line) => process.stderr.write(`${line}\n`));
    process.stderr.write(`compat: ${name} kernel ${path} (${Math.round((Date.now() - started) / 1000)} s)\n`);
  }
  const rows: string[][] = [];
  let failed = 0;
  for (const s of scenarios) {
    process.stderr.write(`compat: running ${s.name} (${kernelName(s.kernel)})...\n`);
    let result = 'FAIL';
    let detail: string;
    let release = '';
    try {
      const r = await runScenario(s);
      release = r.release;
      result = r.rc === 0 ? 'pass' : 'FAIL';
      detail = `${(r.durationMs / 1000).toFixed(1)} s`;
      if (r.rc !== 0 || process.env.COMPAT_VERBOSE === '1') {
        process.stderr.write(`---- ${s.name} rc=${r.rc} stdout\n${r.stdout}\n---- stderr\n${r.stderr.slice(-8000)}\n`);
        if (r.rc !== 0) process.stderr.write(`---- dmesg tail\n${r.dmesg.split('\n').slice(-40).join('\n')}\n`);
      }
    } catch (err) {
      detail = err instanceof Error ? err.message.split('\n')[0]! : String(err);
      process.stderr.write(`---- ${s.name}: ${err instanceof Error ? err.message : String(err)}\n`);
    }
    if (result !== 'pass') failed++;
    rows.push([kernelLabel(s.kernel, release || (await kernelRelease(s.kernel))), s.mode, s.name, result, detail]);
  }
  const head = ['kernel', 'mode', 'scenario', 'result', 'time'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`${line(head)}\n${line(widths.map((w) => '-'.repeat(w)))}\n${rows.map(line).join('\n')}\n`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`compat: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
