/**
 * A child process holding many `@herald/client` clients, for the client chaos test: the
 * package as an app imports it (its dist/), `ws` as the WebSocket, a token function that
 * mints a fresh token each time, and no app code beyond `onNotification`. The parent
 * (see {@link startClientRunner}) sends `report` and gets every client's delivered ids back.
 *
 * Configuration: the JSON in `HERALD_CLIENT_RUNNER` ({@link RunnerConfig}).
 */
import WebSocket from 'ws';
import { createHeraldClient, type HeraldClient } from '@herald/client';
import { userToken } from './tokens.js';
import type { RunnerConfig, RunnerReport } from './client-runners.js';

const config = JSON.parse(process.env['HERALD_CLIENT_RUNNER'] ?? '{}') as RunnerConfig;
const reports: RunnerReport['clients'] = [];
const clients: HeraldClient[] = config.users.map((user) => {
  const report = { user, ids: [] as string[], errors: [] as string[], live: false };
  reports.push(report);
  const client = createHeraldClient({ url: config.url, token: () => userToken(user, {}, config.tokenSeconds), webSocketImpl: WebSocket });
  client.onNotification((notification) => report.ids.push(notification.id));
  client.onStatus((status) => (report.live = status === 'live'));
  client.onError((error) => report.errors.push(`${error.code}: ${error.message}`));
  return client;
});

process.on('message', (message: unknown) => {
  if (message === 'report') process.send?.({ clients: reports } satisfies RunnerReport);
  if (message === 'close') {
    for (const client of clients) client.close();
    process.disconnect();
  }
});
