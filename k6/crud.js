// Load test of the CRUD services: a mixed read/write load at a steady RATE (an open model:
// requests arrive whatever the latency). Setup seeds products (through the batch upsert) and
// customers; each iteration then does one of:
//   get a product by id 40 %, list products 20 %, get a customer 10 %, list a customer's
//   orders 10 %, create an order (1 to 3 lines, priced by the catalog) 15 %, create a product 5 %.
// Every answer must have the expected status; the summary gives latency percentiles per
// operation (tagged `op`).
//
//   k6 run -e CATALOG=http://127.0.0.1:8082 -e CUSTOMERS=http://127.0.0.1:8083 \
//          -e ORDERS=http://127.0.0.1:8087 -e RATE=1000 -e DURATION=30s k6/crud.js
import http from 'k6/http';
import { check } from 'k6';

const CATALOG = __ENV.CATALOG || 'http://127.0.0.1:8082';
const CUSTOMERS = __ENV.CUSTOMERS || 'http://127.0.0.1:8083';
const ORDERS = __ENV.ORDERS || 'http://127.0.0.1:8087';
const PRODUCTS = parseInt(__ENV.PRODUCTS || '2000');
const BUYERS = parseInt(__ENV.BUYERS || '200');
const RATE = parseInt(__ENV.RATE || '1000');
const JSON_HEADERS = { headers: { 'content-type': 'application/json' } };

export const options = {
  scenarios: {
    mixed: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 64,
      maxVUs: 512,
    },
  },
  setupTimeout: '120s',
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds: {
    checks: ['rate==1'],
    'http_req_duration{op:get_product}': ['p(99)>=0'],
    'http_req_duration{op:list_products}': ['p(99)>=0'],
    'http_req_duration{op:get_customer}': ['p(99)>=0'],
    'http_req_duration{op:list_orders}': ['p(99)>=0'],
    'http_req_duration{op:create_order}': ['p(99)>=0'],
    'http_req_duration{op:create_product}': ['p(99)>=0'],
  },
};

const CATEGORIES = ['kitchen', 'garden', 'books', 'toys', 'audio'];

export function setup() {
  const run = Date.now();
  const products = [];
  for (let start = 0; start < PRODUCTS; start += 500) {
    const items = [];
    for (let i = start; i < Math.min(start + 500, PRODUCTS); i++) {
      items.push({
        sku: `K6-${run}-${i}`,
        name: `Product ${i}`,
        category: CATEGORIES[i % CATEGORIES.length],
        price: { amount: 100 + (i % 5000), currency: 'EUR' },
        stock_quantity: 100,
      });
    }
    const res = http.post(`${CATALOG}/api/v1/products/batch`, JSON.stringify({ items }), JSON_HEADERS);
    if (res.status !== 200) throw new Error(`batch: ${res.status} ${res.body}`);
    for (const r of res.json('results')) products.push(r.id);
  }
  const buyers = [];
  for (let i = 0; i < BUYERS; i++) {
    const res = http.post(
      `${CUSTOMERS}/api/v1/customers`,
      JSON.stringify({ name: `Buyer ${i}`, email: `buyer-${run}-${i}@example.com` }),
      JSON_HEADERS,
    );
    if (res.status !== 201) throw new Error(`customer: ${res.status} ${res.body}`);
    buyers.push(res.json('id'));
  }
  return { products, buyers, run };
}

function any(list) {
  return list[Math.floor(Math.random() * list.length)];
}

export default function (data) {
  const pick = Math.random();
  if (pick < 0.4) {
    const res = http.get(`${CATALOG}/api/v1/products/${any(data.products)}`, { tags: { op: 'get_product' } });
    check(res, { 'get product 200': (r) => r.status === 200 });
  } else if (pick < 0.6) {
    const res = http.get(`${CATALOG}/api/v1/products?category=${any(CATEGORIES)}&limit=20`, {
      tags: { op: 'list_products' },
    });
    check(res, { 'list products 200': (r) => r.status === 200 });
  } else if (pick < 0.7) {
    const res = http.get(`${CUSTOMERS}/api/v1/customers/${any(data.buyers)}`, { tags: { op: 'get_customer' } });
    check(res, { 'get customer 200': (r) => r.status === 200 });
  } else if (pick < 0.8) {
    const res = http.get(`${ORDERS}/api/v1/orders?customer_id=${any(data.buyers)}&limit=20`, {
      tags: { op: 'list_orders' },
    });
    check(res, { 'list orders 200': (r) => r.status === 200 });
  } else if (pick < 0.95) {
    const lines = [];
    const n = 1 + Math.floor(Math.random() * 3);
    for (let i = 0; i < n; i++) lines.push({ product_id: any(data.products), quantity: 1 + i });
    const res = http.post(
      `${ORDERS}/api/v1/orders`,
      JSON.stringify({ customer_id: any(data.buyers), lines }),
      { headers: JSON_HEADERS.headers, tags: { op: 'create_order' } },
    );
    check(res, { 'create order 201': (r) => r.status === 201 });
  } else {
    const sku = `K6-${data.run}-new-${__VU}-${__ITER}`;
    const res = http.post(
      `${CATALOG}/api/v1/products`,
      JSON.stringify({ sku, name: sku, category: any(CATEGORIES), price: { amount: 999, currency: 'EUR' }, stock_quantity: 1 }),
      { headers: JSON_HEADERS.headers, tags: { op: 'create_product' } },
    );
    check(res, { 'create product 201': (r) => r.status === 201 });
  }
}
