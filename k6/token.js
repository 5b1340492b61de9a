// Token issuance under load: each iteration asks `POST /api/v1/auth/token` with the password
// grant (an argon2id verification) or client credentials (also argon2id), alternately by VU.
// Every answer must be 200 with a token; the summary gives the rate and latency per grant.
//
//   k6 run -e URL=http://127.0.0.1:8080 -e USER=admin -e PASSWORD=... \
//          -e CLIENT=importer -e SECRET=... -e VUS=4 -e DURATION=20s k6/token.js
import http from 'k6/http';
import { check } from 'k6';

const URL = __ENV.URL || 'http://127.0.0.1:8080';

export const options = {
  vus: parseInt(__ENV.VUS || '4'),
  duration: __ENV.DURATION || '20s',
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds: {
    checks: ['rate==1'],
    'http_req_duration{grant:password}': ['p(99)>=0'],
    'http_req_duration{grant:client_credentials}': ['p(99)>=0'],
  },
};

export default function () {
  const password = __VU % 2 === 0;
  const body = password
    ? { grant_type: 'password', username: __ENV.USER || 'admin', password: __ENV.PASSWORD }
    : { grant_type: 'client_credentials', client_id: __ENV.CLIENT || 'importer', client_secret: __ENV.SECRET };
  const res = http.post(`${URL}/api/v1/auth/token`, body, {
    tags: { grant: password ? 'password' : 'client_credentials' },
  });
  check(res, { 'token 200': (r) => r.status === 200 && r.json('access_token') !== undefined });
}
