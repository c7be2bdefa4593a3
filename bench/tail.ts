/**
 * Where a steady row's latency tail comes from: `npx tsx bench/tail.ts <dir>`, after
 * `BENCH_LATENCY_DIR=<dir> BENCH_ONLY=steadyMany npm run bench` has recorded every
 * open-loop round (the driver's late sends in `driver.txt`, each delivery in the load
 * clients' `deliveries-<pid>.txt`).
 *
 * Per round it prints the p50 and p99 counted from each send's scheduled time (what
 * `npm run bench` reports), the p99 counted from when the send actually went out (the
 * driver's own lateness taken away: sends late by 1 ms or less are not recorded, so this
 * is within 1 ms), the driver's largest lag, and the stalls: runs of deliveries at or
 * above the p99 whose sends were less than 30 ms apart, with when each began (ms into
 * the round), how many deliveries it held and its worst latency. A stall whose
 * latencies fall by 1 ms per ms of send time is one process that stopped and caught up.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Deliveries whose sends are closer than this belong to one stall. */
const STALL_GAP_MS = 30;

interface Round {
  label: string;
  from: number;
  to: number;
  /** Scheduled time → how late the send went out. */
  lags: Map<string, number>;
}

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: npx tsx bench/tail.ts <BENCH_LATENCY_DIR>');
if (!existsSync(join(dir, 'driver.txt'))) throw new Error(`${dir} holds no driver.txt: run the bench with BENCH_LATENCY_DIR=${dir} first`);

const rounds: Round[] = [];
for (const line of readFileSync(join(dir, 'driver.txt'), 'utf8').split('\n')) {
  const round = /^round (.*) ([\d.]+) ([\d.]+)$/.exec(line);
  if (round) {
    rounds.push({ label: round[1] as string, from: Number(round[2]), to: Number(round[3]), lags: new Map() });
    continue;
  }
  const [scheduled, lag] = line.split(' ');
  if (scheduled !== undefined && lag !== undefined) rounds.at(-1)?.lags.set(scheduled, Number(lag));
}

/** Every delivery: [sent (the scheduled time, as the driver wrote it), latency]. */
const deliveries: Array<[string, number]> = [];
for (const file of readdirSync(dir).filter((name) => name.startsWith('deliveries-'))) {
  for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
    const [sent, latency] = line.split(' ');
    if (sent !== undefined && latency !== undefined) deliveries.push([sent, Number(latency)]);
  }
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

for (const round of rounds) {
  // Each round's sends are scheduled at distinct times, which the deliveries carry in their text.
  const mine = deliveries.filter(([sent]) => Number(sent) >= round.from - 0.01 && Number(sent) <= round.to + 0.01).sort((a, b) => Number(a[0]) - Number(b[0]));
  if (mine.length === 0) continue;
  const scheduled = mine.map(([, latency]) => latency).sort((a, b) => a - b);
  const actual = mine.map(([sent, latency]) => latency - (round.lags.get(sent) ?? 0)).sort((a, b) => a - b);
  const p99 = percentile(scheduled, 99);
  const stalls: Array<{ at: number; last: number; count: number; worst: number }> = [];
  for (const [sent, latency] of mine) {
    if (latency < p99) continue;
    const at = Number(sent) - round.from;
    const stall = stalls.at(-1);
    if (stall && at - stall.last < STALL_GAP_MS) {
      stall.last = at;
      stall.count += 1;
      stall.worst = Math.max(stall.worst, latency);
    } else stalls.push({ at, last: at, count: 1, worst: latency });
  }
  const maxLag = Math.max(0, ...round.lags.values());
  console.info(
    `${round.label}: ${mine.length} deliveries, p50 ${percentile(scheduled, 50).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms from the scheduled time, ` +
      `${percentile(actual, 99).toFixed(2)} ms from the actual send; the driver's largest lag ${maxLag.toFixed(1)} ms; stalls (at ms, deliveries, worst ms): ` +
      stalls.map((stall) => `${Math.round(stall.at)}·${stall.count}·${stall.worst.toFixed(1)}`).join(' '),
  );
}
