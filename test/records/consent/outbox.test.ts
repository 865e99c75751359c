import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildConsent } from '../../../src/records/consent/consent-resource.js';
import { ConsentStore } from '../../../src/records/consent/consent-store.js';
import { ConsentOutboxWorker, OUTBOX_GROUP } from '../../../src/records/consent/outbox.js';
import { createLogger } from '../../../src/platform/ops/logger.js';
import { connectRedis, createRedis, type RedisClient } from '../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../src/platform/redis/keyspace.js';

const ISSUER = 'http://localhost:3000';
const TOKEN = 'consent-writer-token';

interface Received {
  method: string;
  url: string;
  auth: string | undefined;
  contentType: string | undefined;
  body: { id: string; status: string; resourceType: string };
  answered: number;
}

/**
 * A FHIR server stand-in: `answer` decides each response (a status, or 'hang' to never answer).
 * `accepted` lists the PUTs it answered with 2xx.
 */
class FakeFhirServer {
  received: Received[] = [];
  answer: (n: number) => number | 'hang' = () => 200;
  private server: Server | undefined;
  private hanging: ServerResponse[] = [];
  port = 0;

  get accepted(): Received[] {
    return this.received.filter((r) => r.answered >= 200 && r.answered < 300);
  }

  async listen(port = 0): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const outcome = this.answer(this.received.length);
    const entry: Received = {
      method: req.method!,
      url: req.url!,
      auth: req.headers.authorization,
      contentType: req.headers['content-type'],
      body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
      answered: outcome === 'hang' ? 0 : outcome,
    };
    this.received.push(entry);
    if (outcome === 'hang') {
      this.hanging.push(res);
      return;
    }
    res.writeHead(outcome, { 'Content-Type': 'application/fhir+json' });
    res.end(
      JSON.stringify(outcome < 300 ? entry.body : { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient' }] }),
    );
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.hanging = [];
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }
}

let redis: RedisClient;
const logLines: Array<Record<string, unknown>> = [];
const logger = createLogger(
  'warn',
  new Writable({
    write(chunk, _enc, done) {
      logLines.push(JSON.parse(String(chunk)));
      done();
    },
  }),
);

beforeAll(async () => {
  redis = createRedis({ url: process.env.REDIS_URL, prefix: '' });
  redis.on('error', () => {});
  await connectRedis(redis);
});
afterAll(() => redis.disconnect());

function setup() {
  const keyspace = new Keyspace(`test-${randomUUID()}:`);
  const store = new ConsentStore(redis, keyspace, { outbox: true });
  const record = (patient = 'pat-1') =>
    store.create(
      buildConsent(
        {
          kind: 'permit',
          patientId: patient,
          performer: { reference: `Patient/${patient}` },
          clientId: 'app',
          scopes: ['patient/Observation.rs'],
          periodSeconds: 3600,
        },
        new Date(),
        { issuer: ISSUER },
      ),
      { scopes: ['patient/Observation.rs'] },
    );
  const worker = (server: FakeFhirServer, consumer: string) =>
    new ConsentOutboxWorker({
      redis,
      keyspace,
      store,
      fhirServer: `http://127.0.0.1:${server.port}/fhir`,
      token: TOKEN,
      logger,
      consumer,
      pollMs: 20,
      baseDelayMs: 50,
      maxDelayMs: 400,
      requestTimeoutMs: 200,
    });
  return { keyspace, store, record, worker };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function outboxSettled(keyspace: Keyspace): Promise<boolean> {
  const [length, pending] = await Promise.all([
    redis.xlen(keyspace.consentOutbox()),
    redis.xpending(keyspace.consentOutbox(), OUTBOX_GROUP) as Promise<[number, ...unknown[]]>,
  ]);
  return length === 0 && pending[0] === 0;
}

test('without a FHIR server configured nothing is enqueued', async () => {
  const keyspace = new Keyspace(`test-${randomUUID()}:`);
  const store = new ConsentStore(redis, keyspace);
  const c = await store.create(
    buildConsent(
      { kind: 'permit', patientId: 'p', performer: { reference: 'Patient/p' }, clientId: 'app', scopes: [], periodSeconds: 60 },
      new Date(),
      { issuer: ISSUER },
    ),
    { scopes: [] },
  );
  await store.withdraw(c.resource.id, { reference: 'Patient/p' });
  expect(await redis.exists(keyspace.consentOutbox())).toBe(0);
});

test('a FHIR server that is down, then failing, then up: the Consent arrives exactly once; the withdrawal follows', async () => {
  const { keyspace, store, record, worker } = setup();
  const server = new FakeFhirServer();
  // Learn a free port, then leave it closed: the server is down (connection refused).
  await server.listen();
  const port = server.port;
  await server.close();

  const consent = await record();
  expect(await redis.xlen(keyspace.consentOutbox())).toBe(1);
  const w = worker(server, 'w-1');
  w.start();
  try {
    await until(
      'a first failed attempt',
      async () => ((await redis.xpending(keyspace.consentOutbox(), OUTBOX_GROUP)) as [number])[0] === 1,
    );
    await sleep(300);
    expect(server.received).toHaveLength(0);

    server.answer = (n) => (n < 2 ? 503 : 200);
    await server.listen(port);
    await until('the Consent to arrive', () => server.accepted.length === 1);
    await until('the outbox to empty', () => outboxSettled(keyspace));
    await sleep(400);
    expect(server.accepted).toHaveLength(1);
    expect(server.received.map((r) => r.answered)).toEqual([503, 503, 200]);
    const put = server.accepted[0]!;
    expect(put).toMatchObject({
      method: 'PUT',
      url: `/fhir/Consent/${consent.resource.id}`,
      auth: `Bearer ${TOKEN}`,
      contentType: 'application/fhir+json; charset=utf-8',
    });
    expect(put.body).toMatchObject({ resourceType: 'Consent', id: consent.resource.id, status: 'active' });

    await store.withdraw(consent.resource.id, { reference: 'Patient/pat-1' });
    await until('the withdrawal to arrive', () => server.accepted.length === 2);
    expect(server.accepted[1]!.body).toMatchObject({ id: consent.resource.id, status: 'inactive' });
    await until('the outbox to empty', () => outboxSettled(keyspace));
  } finally {
    await w.stop();
    await server.close();
  }
  expect(logLines.some((l) => l.msg === 'consent outbox: FHIR server write failed; will retry')).toBe(true);
  expect(JSON.stringify(logLines)).not.toContain(TOKEN);
});

test('a worker that stops mid-delivery (a crash) leaves the entry pending; another worker delivers it', async () => {
  const { keyspace, record, worker } = setup();
  const server = new FakeFhirServer();
  server.answer = () => 'hang';
  await server.listen();
  const consent = await record('pat-crash');
  const first = worker(server, 'w-crash');
  first.start();
  try {
    await until('the first delivery to start', () => server.received.length === 1);
    await first.stop();
    const pending = (await redis.xpending(keyspace.consentOutbox(), OUTBOX_GROUP, '-', '+', 10)) as Array<[string, string, number, number]>;
    expect(pending.map((p) => p[1])).toEqual(['w-crash']);
    expect(server.accepted).toHaveLength(0);

    server.answer = () => 200;
    const second = worker(server, 'w-new');
    second.start();
    try {
      await until('the Consent to arrive', () => server.accepted.length === 1);
      await until('the outbox to empty', () => outboxSettled(keyspace));
      await sleep(300);
      expect(server.accepted).toHaveLength(1);
      expect(server.accepted[0]!.body.id).toBe(consent.resource.id);
    } finally {
      await second.stop();
    }
  } finally {
    await server.close();
  }
});

test('a refusal retrying cannot fix goes to the dead letters, acknowledged and logged', async () => {
  const { keyspace, record, worker } = setup();
  const server = new FakeFhirServer();
  server.answer = () => 422;
  await server.listen();
  const consent = await record('pat-dead');
  const w = worker(server, 'w-dead');
  try {
    expect(await w.runOnce()).toBe(1);
    expect(await outboxSettled(keyspace)).toBe(true);
    const dead = (await redis.xrange(keyspace.consentOutboxDead(), '-', '+')) as Array<[string, string[]]>;
    expect(dead).toHaveLength(1);
    expect(dead[0]![1]).toEqual(expect.arrayContaining(['consent', consent.resource.id, 'reason', 'HTTP 422']));
    expect(logLines.some((l) => l.consentId === consent.resource.id && l.level === 50)).toBe(true);
    expect(server.received).toHaveLength(1);
  } finally {
    await w.stop();
    await server.close();
  }
});

test('retry delays grow exponentially up to the cap, never below the request timeout', () => {
  const { worker } = setup();
  const w = worker(new FakeFhirServer(), 'w-delays');
  expect([1, 2, 3, 4, 5, 6].map((n) => w.retryDelay(n))).toEqual([300, 300, 300, 400, 400, 400]);
  const prod = new ConsentOutboxWorker({ redis, keyspace: new Keyspace('x:'), store: undefined as never, fhirServer: 'http://x', logger });
  expect([1, 2, 3, 10, 20].map((n) => prod.retryDelay(n))).toEqual([15_000, 15_000, 15_000, 300_000, 300_000]);
});
