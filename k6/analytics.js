// Load test of the analytics queries: each iteration asks one of a product's latest windows
// (60 %), the top of a window (30 %) or a page of a time range (10 %), for products and
// minutes of the data the runner loaded. Every answer must be 200 with the expected shape;
// the summary gives latency percentiles per query (tagged `query`).
//
//   k6 run -e URL=http://127.0.0.1:8080 -e FROM=2024-01-01T12:00:00Z -e MINUTES=8 \
//          -e PRODUCTS=1000 -e VUS=8 -e DURATION=20s [-e RATE=200] k6/analytics.js
import http from 'k6/http';
import { check } from 'k6';

const URL = __ENV.URL || 'http://127.0.0.1:8080';
const FROM = Date.parse(__ENV.FROM || '2024-01-01T12:00:00Z');
const MINUTES = parseInt(__ENV.MINUTES || '8');
const PRODUCTS = parseInt(__ENV.PRODUCTS || '1000');

// RATE=N: N requests per second whatever the latency (an open model), instead of VUS users
// asking as fast as they can (a closed model, which measures the store at saturation).
const RATE = parseInt(__ENV.RATE || '0');
const load = RATE > 0
  ? {
      scenarios: {
        steady: {
          executor: 'constant-arrival-rate',
          rate: RATE,
          timeUnit: '1s',
          duration: __ENV.DURATION || '20s',
          preAllocatedVUs: 32,
          maxVUs: 256,
        },
      },
    }
  : { vus: parseInt(__ENV.VUS || '8'), duration: __ENV.DURATION || '20s' };

export const options = {
  ...load,
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds: {
    checks: ['rate==1'],
    'http_req_duration{query:product}': ['p(99)>=0'],
    'http_req_duration{query:top}': ['p(99)>=0'],
    'http_req_duration{query:range}': ['p(99)>=0'],
  },
};

function minute(i) {
  return new Date(FROM + i * 60000).toISOString().replace('.000Z', 'Z');
}

export default function () {
  const pick = Math.random();
  if (pick < 0.6) {
    // Sample products skew to the low ids, as the generator's Zipf does.
    const product = Math.floor(Math.pow(Math.random(), 3) * PRODUCTS);
    const res = http.get(`${URL}/api/v1/analytics/products/p${product}/windows?limit=10`, {
      tags: { query: 'product' },
    });
    check(res, { 'product 200': (r) => r.status === 200 && Array.isArray(r.json('windows')) });
  } else if (pick < 0.9) {
    const start = minute(Math.floor(Math.random() * MINUTES));
    const res = http.get(`${URL}/api/v1/analytics/top?limit=10&window_start=${start}`, {
      tags: { query: 'top' },
    });
    check(res, { 'top 200': (r) => r.status === 200 && r.json('products').length > 0 });
  } else {
    const m = Math.floor(Math.random() * MINUTES);
    const res = http.get(`${URL}/api/v1/analytics/windows?from=${minute(m)}&to=${minute(m + 1)}&limit=100`, {
      tags: { query: 'range' },
    });
    check(res, { 'range 200': (r) => r.status === 200 && r.json('windows').length > 0 });
  }
}
