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

export async function callAgent<T>(socket: string, method: 'GET' | 'POST', path: string, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : {};
        } catch {
          reject(new Error(`agent answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`));
          return;
        }
        const status = res.statusCode ?? 500;
        if (status >= 400) {
          const e = (body as ApiErrorBody).error;
          reject(new AgentError(e ? e.message : `agent answered ${status}`, status, e?.code, e?.field));
        } else resolve(body as T);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`agent did not answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new AgentUnreachable(`no agent is listening on ${socket} (start one with "tollgate agent --config policy.yaml", or pass --socket)`));
      } else reject(err);
    });
    req.end();
  });
}
