// A small client for the agent's API over its unix socket (what the CLI uses).
import { request } from 'node:http';

export class AgentUnreachable extends Error {}

/** The agent answered with an error; `field` names the offending request field when there is one. */
export class AgentError extends Error {
  constructor(message: string, readonly status: number, readonly code?: string, readonly field?: string) {
    super(message);
  }
}

export interface ApiErrorBody {
  error: { code: string; message: string; field?: string };
}

/** A request to the agent: the status and body text, or AgentUnreachable. */
type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

function requestAgent(socket: string, method: Method, path: string, timeoutMs: number, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? undefined : { 'content-type': 'application/json' };
    const req = request({ socketPath: socket, method, path, timeout: timeoutMs, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 500, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`agent did not answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new AgentUnreachable(`no agent is listening on ${socket} (start one with "tollgate agent --config policy.yaml", or pass --socket)`));
      } else reject(err);
    });
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

function parseBody(status: number, text: string): unknown {
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    throw new Error(`agent answered ${status} with non-JSON: ${text.slice(0, 200)}`);
  }
}

function failure(status: number, text: string): AgentError {
  const e = (parseBody(status, text) as ApiErrorBody).error;
  return new AgentError(e ? e.message : `agent answered ${status}`, status, e?.code, e?.field);
}

export async function callAgent<T>(socket: string, method: Method, path: string, timeoutMs = 30_000, body?: unknown): Promise<T> {
  const { status, text } = await requestAgent(socket, method, path, timeoutMs, body);
  if (status >= 400) throw failure(status, text);
  return parseBody(status, text) as T;
}

/** A GET whose body is printed as it came (CSV, HTML, stored JSON). */
export async function fetchAgentText(socket: string, path: string, timeoutMs = 30_000): Promise<string> {
  const { status, text } = await requestAgent(socket, 'GET', path, timeoutMs);
  if (status >= 400) throw failure(status, text);
  return text;
}

/**
 * Follows a server-sent event stream until the agent closes it or `signal`
 * aborts; each event's data is handed over parsed. Resolves when the stream
 * ends, with the id of the last event seen (to resume from).
 */
export function streamAgent(socket: string, path: string, onEvent: (data: unknown, id: string | undefined) => void, opts: { lastEventId?: string; signal?: AbortSignal } = {}): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let lastId = opts.lastEventId;
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (lastId !== undefined) headers['last-event-id'] = lastId;
    const req = request({ socketPath: socket, method: 'GET', path, headers, signal: opts.signal }, (res) => {
      if ((res.statusCode ?? 500) >= 400) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => reject(failure(res.statusCode ?? 500, Buffer.concat(chunks).toString('utf8'))));
        return;
      }
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk: string) => {
        buf += chunk;
        let at = 0;
        let end: number;
        while ((end = buf.indexOf('\n\n', at)) >= 0) {
          const block = buf.slice(at, end);
          at = end + 2;
          let id: string | undefined;
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length === 0) continue; // a comment (keep-alive)
          if (id !== undefined) lastId = id;
          onEvent(JSON.parse(data.join('\n')), id);
        }
        buf = buf.slice(at); // once per chunk: slicing per event would copy a long chunk over and over
      });
      res.on('end', () => resolve(lastId));
      res.on('error', (err) => (opts.signal?.aborted ? resolve(lastId) : reject(err)));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (opts.signal?.aborted) resolve(lastId);
      else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new AgentUnreachable(`no agent is listening on ${socket} (start one with "tollgate agent --config policy.yaml", or pass --socket)`));
      else reject(err);
    });
    req.end();
  });
}
