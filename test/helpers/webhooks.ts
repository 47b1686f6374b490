// A webhook receiver on loopback for lab tests: records every POST (its
// arrival time, idempotency key and JSON body) and answers 200.
import { createServer } from 'node:http';

export interface WebhookPost<B> {
  at: number;
  key: string;
  body: B;
}

export interface WebhookReceiver<B> {
  url: string;
  posts: WebhookPost<B>[];
  close(): Promise<void>;
}

export async function startWebhookReceiver<B = unknown>(): Promise<WebhookReceiver<B>> {
  const posts: WebhookPost<B>[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      posts.push({ at: Date.now(), key: String(req.headers['idempotency-key']), body: JSON.parse(body) as B });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/alerts`,
    posts,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
