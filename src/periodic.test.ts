import test from 'node:test';
import assert from 'node:assert/strict';
import { PeriodicTask, type TaskEvents } from './periodic.js';

/** Returns the queued outcomes in turn: a number is a result, an Error is thrown. */
class Scripted extends PeriodicTask<number> {
  runs = 0;
  constructor(private readonly outcomes: Array<number | Error>, events: TaskEvents<number>) {
    super(60_000, events);
  }
  protected async run(): Promise<number> {
    const o = this.outcomes[this.runs++]!;
    await new Promise((r) => setImmediate(r));
    if (o instanceof Error) throw o;
    return o;
  }
}

test('a task keeps its last result, counts failures and tells its listeners', async () => {
  const told: string[] = [];
  const task = new Scripted([1, new Error('boom'), 3], {
    onExport: (r) => told.push(`ok ${r}`),
    onError: (e) => told.push(`error ${(e as Error).message}`),
  });
  const [a, b] = [task.runNow(), task.runNow()];
  assert.equal(a, b, 'concurrent callers share one run');
  assert.equal(await a, 1);
  await assert.rejects(task.runNow(), /boom/);
  assert.deepEqual([task.last, task.failures], [1, 1], 'a failure keeps the last result');
  assert.equal(await task.runNow(), 3);
  assert.deepEqual([task.last, task.failures, task.runs], [3, 1, 3]);
  assert.deepEqual(told, ['ok 1', 'error boom', 'ok 3']);
});

test('a listener that throws fails the run', async () => {
  const task = new Scripted([1], { onExport: () => { throw new Error('listener'); } });
  await assert.rejects(task.runNow(), /listener/);
  assert.deepEqual([task.last, task.failures], [1, 1]);
});
