// Load test of `POST /api/v1/events`: BATCH events per request (1 or 500), VUS virtual users, for
// DURATION (FIXED=1: one body per VU, sent again and again). Every request must get 202 with every event accepted; the summary gives requests/s,
// events/s (the `events_accepted` counter) and latency percentiles.
//
//   k6 run -e URL=http://127.0.0.1:8084 -e BATCH=500 -e VUS=8 -e DURATION=20s k6/ingest.js
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

const URL = __ENV.URL || 'http://127.0.0.1:8084';
const BATCH = parseInt(__ENV.BATCH || '1');
const eventsAccepted = new Counter('events_accepted');

export const options = {
  vus: parseInt(__ENV.VUS || '8'),
  duration: __ENV.DURATION || '20s',
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds: { checks: ['rate==1'] },
};

const PRODUCTS = 10000;
const USERS = 100000;

function event(i) {
  // Timestamps advance with wall time, as live traffic would.
  return {
    user_id: `u${(i * 7919) % USERS}`,
    product_id: `p${(i * 104729) % PRODUCTS}`,
    event_type: 'VIEW_PRODUCT',
    timestamp: new Date().toISOString(),
    metadata: { session_id: `s${__VU}` },
  };
}

let counter = 0;
// FIXED=1: each VU builds one body and sends it again and again, so that the server, not
// the JavaScript building 500 events per request, is what is measured.
const FIXED = __ENV.FIXED === '1';
let fixed = null;

function build() {
  const events = [];
  for (let k = 0; k < BATCH; k++) {
    events.push(event(__VU * 1000003 + counter++));
  }
  return BATCH === 1 ? JSON.stringify(events[0]) : JSON.stringify(events);
}

export default function () {
  let body;
  if (FIXED) {
    fixed = fixed || build();
    body = fixed;
  } else {
    body = build();
  }
  const res = http.post(`${URL}/api/v1/events`, body, {
    headers: { 'Content-Type': 'application/json' },
  });
  const ok = check(res, {
    '202': (r) => r.status === 202,
    'all accepted': (r) => r.status === 202 && r.json('accepted') === BATCH,
  });
  if (ok) {
    eventsAccepted.add(BATCH);
  }
}
