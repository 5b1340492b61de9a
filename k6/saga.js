// The order saga under load: orders placed at a steady RATE (an open model) through the
// gateway of `ecom up`, each with `Prefer: wait=10`, so that an answer comes once the saga has
// settled: its duration is the time from POST to CONFIRMED (stock reserved, payment taken by
// the sandbox, PURCHASE events staged). Setup seeds products with ample stock (through the
// catalog's batch upsert, synced to the inventory) and customers; every order must come back
// CONFIRMED.
//
//   k6 run -e URL=http://127.0.0.1:8080 -e PASSWORD=... -e RATE=500 -e DURATION=20s k6/saga.js
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Trend, Counter } from 'k6/metrics';

const URL = __ENV.URL || 'http://127.0.0.1:8080';
const PRODUCTS = parseInt(__ENV.PRODUCTS || '200');
const BUYERS = parseInt(__ENV.BUYERS || '200');
const RATE = parseInt(__ENV.RATE || '500');
const saga = new Trend('saga_duration', true);
const confirmed = new Counter('orders_confirmed');

export const options = {
  scenarios: {
    orders: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '20s',
      preAllocatedVUs: 64,
      maxVUs: 1024,
    },
  },
  setupTimeout: '180s',
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds: {
    checks: ['rate==1'],
    saga_duration: ['p(99)>=0'],
  },
};

function json(token) {
  return { headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } };
}

export function setup() {
  const login = http.post(`${URL}/api/v1/auth/token`, {
    grant_type: 'password', username: 'admin', password: __ENV.PASSWORD,
  });
  const token = login.json('access_token');
  const run = Date.now();
  const items = [];
  for (let i = 0; i < PRODUCTS; i++) {
    items.push({
      sku: `SAGA-${run}-${i}`, name: `Product ${i}`, category: 'load',
      price: { amount: 100 + i, currency: 'EUR' }, stock_quantity: 1000000,
    });
  }
  const batch = http.post(`${URL}/api/v1/products/batch`, JSON.stringify({ items }), json(token));
  const products = batch.json('results').map((r) => r.id);
  const buyers = [];
  for (let i = 0; i < BUYERS; i++) {
    const c = http.post(`${URL}/api/v1/customers`,
      JSON.stringify({ name: `Buyer ${i}`, email: `saga-${run}-${i}@example.com` }), json(token));
    buyers.push(c.json('id'));
  }
  // The stock sync: every product's stock in the inventory before the first order.
  for (const id of products) {
    for (let t = 0; t < 300; t++) {
      const s = http.get(`${URL}/api/v1/inventory/${id}`);
      if (s.status === 200 && s.json('on_hand') === 1000000) break;
      sleep(0.05);
    }
  }
  return { token, products, buyers };
}

export default function (data) {
  const buyer = data.buyers[Math.floor(Math.random() * data.buyers.length)];
  const lines = [];
  const n = 1 + Math.floor(Math.random() * 3);
  const start = Math.floor(Math.random() * (data.products.length - 3));
  for (let i = 0; i < n; i++) lines.push({ product_id: data.products[start + i], quantity: 1 });
  const params = json(data.token);
  params.headers.prefer = 'wait=10';
  const res = http.post(`${URL}/api/v1/orders`, JSON.stringify({ customer_id: buyer, lines }), params);
  const ok = check(res, {
    'order 201 CONFIRMED': (r) => r.status === 201 && r.json('status') === 'CONFIRMED',
  });
  if (ok) {
    confirmed.add(1);
    saga.add(res.timings.duration);
  } else if (__ITER < 3) {
    console.warn(`not confirmed: ${res.status} ${String(res.body).substring(0, 300)}`);
  }
}
