// The gateway's cost: the same request (`GET /api/v1/products/{id}`, a product of the catalog)
// sent straight to the catalog or through a gateway, anonymously or with a bearer token.
// MODE=rate: an open model at RATE requests/s (latency at a steady load); MODE=max: VUS
// virtual users back to back (throughput). Every answer must be 200.
//
//   k6 run -e URL=http://127.0.0.1:18080 -e CATALOG=http://127.0.0.1:18082 [-e TOKEN=...] \
//          -e MODE=rate -e RATE=1000 -e DURATION=20s k6/gateway.js
import http from 'k6/http';
import { check } from 'k6';

const URL = __ENV.URL;
const CATALOG = __ENV.CATALOG || URL;
const TOKEN = __ENV.TOKEN || '';
const DURATION = __ENV.DURATION || '20s';

const scenario = (__ENV.MODE || 'rate') === 'rate'
  ? {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '1000'),
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 50,
      maxVUs: 200,
    }
  : { executor: 'constant-vus', vus: parseInt(__ENV.VUS || '8'), duration: DURATION };

export const options = {
  scenarios: { load: scenario },
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds: { checks: ['rate==1'] },
};

export function setup() {
  const res = http.get(`${CATALOG}/api/v1/products?limit=200`);
  const ids = res.json('items').map((p) => p.id);
  if (ids.length === 0) throw new Error('no products: seed the catalog first');
  return { ids };
}

const params = TOKEN ? { headers: { Authorization: `Bearer ${TOKEN}` } } : {};

export default function (data) {
  const id = data.ids[Math.floor(Math.random() * data.ids.length)];
  const res = http.get(`${URL}/api/v1/products/${id}`, params);
  check(res, { '200': (r) => r.status === 200 });
}
