// Runs graphql-http's official GraphQL-over-HTTP server audits against a URL and
// prints one JSON line per audit: {id, name, status, reason}.
// Usage: node audit.mjs http://127.0.0.1:8000/graphql [bearer token]
import { serverAudits } from "graphql-http";

const [url, token] = process.argv.slice(2);
const authorized = (input, init = {}) => {
  const headers = new Headers(init.headers);
  if (token) headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};
const results = [];
for (const audit of serverAudits({ url, fetchFn: authorized })) {
  const result = await audit.fn();
  results.push({ id: audit.id, name: audit.name, status: result.status,
                 reason: result.status === "ok" ? null : result.reason });
}
console.log(JSON.stringify(results));
