// The platform's load test (seed 002 §11): virtual users ramping 50 → 100 → 200 through the
// gateway, with the mix a shop's traffic has:
//   activity events (POST /api/v1/events, 1 to 5 events with live times)   70 %
//   product reads (one product 10 %, a category's page 5 %)                 15 %
//   analytics (the top of the last closed window 5 %, a product's windows 5 %) 10 %
//   orders (a registered customer orders 1 to 3 products)                    5 %
// Thresholds: errors under 1 %, p95 under 200 ms. On a cluster it drives the gateway's and
// ingest's HPAs (README, "Load test"); k6/run.sh runs it briefly against `ecom up`.
//
//   k6 run -e GATEWAY_URL=https://shop.example.com -e ADMIN_PASSWORD=... k6/load-test.js
//
// GATEWAY_URL   the gateway (default http://127.0.0.1:8080)
// ADMIN_PASSWORD  the admin account's password (products are seeded with its token; the
//               analytics routes are read with it too); or ADMIN_TOKEN, a token with role admin
// STAGE         the length of each of the seven stages (default 2m: 14 minutes in all)
// THINK         seconds a user waits between requests (default 0.1)
import http from 'k6/http';
import { check, sleep } from 'k6';

const URL = (__ENV.GATEWAY_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const STAGE = __ENV.STAGE || '2m';
const THINK = parseFloat(__ENV.THINK || '0.1');
const PRODUCTS = parseInt(__ENV.PRODUCTS || '500');
const CUSTOMERS = parseInt(__ENV.CUSTOMERS || '20');
const JSON_HEADERS = { 'content-type': 'application/json' };
const CATEGORIES = ['kitchen', 'garden', 'books', 'toys', 'audio'];
const EVENT_TYPES = ['VIEW_PRODUCT', 'VIEW_PRODUCT', 'VIEW_PRODUCT', 'VIEW_PRODUCT', 'ADD_TO_CART', 'PURCHASE'];

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: STAGE, target: 50 },
        { duration: STAGE, target: 50 },
        { duration: STAGE, target: 100 },
        { duration: STAGE, target: 100 },
        { duration: STAGE, target: 200 },
        { duration: STAGE, target: 200 },
        { duration: STAGE, target: 0 },
      ],
      gracefulRampDown: '10s',
    },
  },
  setupTimeout: '180s',
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(95)', 'p(99)', 'max'],
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(95)<200'],
    // Per operation, for the summary (always pass).
    'http_req_duration{op:events}': ['p(95)>=0'],
    'http_req_duration{op:product}': ['p(95)>=0'],
    'http_req_duration{op:products}': ['p(95)>=0'],
    'http_req_duration{op:top}': ['p(95)>=0'],
    'http_req_duration{op:windows}': ['p(95)>=0'],
    'http_req_duration{op:order}': ['p(95)>=0'],
  },
};

function any(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function token(form) {
  const res = http.post(`${URL}/api/v1/auth/token`, form, { tags: { op: 'setup' } });
  if (res.status !== 200) throw new Error(`token: ${res.status} ${res.body}`);
  return res.json('access_token');
}

// Products through the batch route, and customers through registration, each with a token.
export function setup() {
  const run = Date.now();
  const admin = __ENV.ADMIN_TOKEN
    || token({ grant_type: 'password', username: 'admin', password: __ENV.ADMIN_PASSWORD });
  const auth = { 'content-type': 'application/json', Authorization: `Bearer ${admin}` };
  const products = [];
  for (let start = 0; start < PRODUCTS; start += 500) {
    const items = [];
    for (let i = start; i < Math.min(start + 500, PRODUCTS); i++) {
      items.push({
        sku: `LOAD-${run}-${i}`,
        name: `Product ${i}`,
        category: CATEGORIES[i % CATEGORIES.length],
        price: { amount: 100 + (i % 5000), currency: 'EUR' },
        stock_quantity: 1000000,
      });
    }
    const res = http.post(`${URL}/api/v1/products/batch`, JSON.stringify({ items }), { headers: auth, tags: { op: 'setup' } });
    if (res.status !== 200) throw new Error(`products: ${res.status} ${res.body}`);
    for (const r of res.json('results')) products.push(r.id);
  }
  const customers = [];
  for (let i = 0; i < CUSTOMERS; i++) {
    const email = `load-${run}-${i}@example.com`;
    const password = `load test password ${run} ${i}`;
    const res = http.post(`${URL}/api/v1/auth/register`, JSON.stringify({ email, password, name: `Buyer ${i}` }), {
      headers: JSON_HEADERS,
      tags: { op: 'setup' },
    });
    if (res.status !== 201) throw new Error(`register: ${res.status} ${res.body}`);
    customers.push({ id: res.json('customer_id'), token: token({ grant_type: 'password', username: email, password }) });
  }
  return { products, customers, admin };
}

function events(data) {
  const now = new Date().toISOString();
  const batch = [];
  const n = 1 + Math.floor(Math.random() * 5);
  for (let i = 0; i < n; i++) {
    batch.push({
      user_id: `u${__VU}-${Math.floor(Math.random() * 1000)}`,
      product_id: any(data.products),
      event_type: any(EVENT_TYPES),
      timestamp: now,
    });
  }
  const res = http.post(`${URL}/api/v1/events`, JSON.stringify(batch), { headers: JSON_HEADERS, tags: { op: 'events' } });
  check(res, { 'events 202': (r) => r.status === 202 });
}

export default function (data) {
  const pick = Math.random();
  const analyst = { headers: { Authorization: `Bearer ${data.admin}` } };
  if (pick < 0.7) {
    events(data);
  } else if (pick < 0.8) {
    const res = http.get(`${URL}/api/v1/products/${any(data.products)}`, { tags: { op: 'product' } });
    check(res, { 'product 200': (r) => r.status === 200 });
  } else if (pick < 0.85) {
    const res = http.get(`${URL}/api/v1/products?category=${any(CATEGORIES)}&limit=20`, { tags: { op: 'products' } });
    check(res, { 'products 200': (r) => r.status === 200 });
  } else if (pick < 0.9) {
    const res = http.get(`${URL}/api/v1/analytics/top?limit=10`, Object.assign({ tags: { op: 'top' } }, analyst));
    check(res, { 'top 200': (r) => r.status === 200 });
  } else if (pick < 0.95) {
    const res = http.get(`${URL}/api/v1/analytics/products/${any(data.products)}/windows`, Object.assign({ tags: { op: 'windows' } }, analyst));
    check(res, { 'windows 200': (r) => r.status === 200 });
  } else {
    const buyer = any(data.customers);
    const lines = [];
    const n = 1 + Math.floor(Math.random() * 3);
    for (let i = 0; i < n; i++) lines.push({ product_id: any(data.products), quantity: 1 });
    const res = http.post(`${URL}/api/v1/orders`, JSON.stringify({ customer_id: buyer.id, lines }), {
      headers: { 'content-type': 'application/json', Authorization: `Bearer ${buyer.token}` },
      tags: { op: 'order' },
    });
    check(res, { 'order 201': (r) => r.status === 201 });
  }
  sleep(THINK * (0.5 + Math.random()));
}
