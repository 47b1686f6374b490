// Shared by the event module tests: a temporary directory for the file under
// test (created before, removed after), and a fresh store and audit path per call.
import { after, before } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Registers the directory's hooks; returns a maker of fresh { db, audit } paths named tag1, tag2, ... */
export function eventFiles(tag: string): () => { db: string; audit: string } {
  let dir = '';
  let n = 0;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tg-evu-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  return () => {
    n++;
    return { db: join(dir, `${tag}${n}.db`), audit: join(dir, `${tag}${n}.jsonl`) };
  };
}
