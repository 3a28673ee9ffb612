// client.mjs: a real OAuth client library (oauth4webapi) gets a DPoP-bound
// access token by client credentials from the interop server, then makes the
// DPoP proof for one resource request, without sending it.
//
// Usage: node client.mjs ISSUER CLIENT_ID CLIENT_SECRET RESOURCE METHOD URL
// Prints one JSON line to stdout:
//   {"access_token":"…","token_type":"DPoP","dpop":"<proof>","authorization":"DPoP …",
//    "method":"…","url":"…"}
import process from 'node:process';

import * as oauth from 'oauth4webapi';

const [issuerArg, clientId, clientSecret, resource, method, url] = process.argv.slice(2);
if (!url) {
  process.stderr.write('usage: node client.mjs ISSUER CLIENT_ID CLIENT_SECRET RESOURCE METHOD URL\n');
  process.exit(2);
}
// Loopback over plain http is the whole point of the harness.
const insecure = { [oauth.allowInsecureRequests]: true };

const issuer = new URL(issuerArg);
const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
const client = { client_id: clientId };
const keyPair = await oauth.generateKeyPair('ES256');
const DPoP = oauth.DPoP(client, keyPair);

// resource for RFC 8707 servers (oidc-provider), audience for Auth0 (and
// dev-issuer).
const params = new URLSearchParams({ resource, audience: resource, scope: 'read:target' });
const grant = () => oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(clientSecret), params, { DPoP, ...insecure });
let token;
try {
  token = await oauth.processClientCredentialsResponse(as, client, await grant());
} catch (err) {
  // A server that asks for a DPoP nonce answers use_dpop_nonce once; the
  // handle has stored the nonce, so the retry carries it.
  if (!oauth.isDPoPNonceError(err)) throw err;
  token = await oauth.processClientCredentialsResponse(as, client, await grant());
}

// The resource request is made by the library but never sent: customFetch
// captures its headers (Authorization: DPoP <token>, DPoP: <proof>).
let captured;
await oauth.protectedResourceRequest(token.access_token, method, new URL(url), new Headers(), null, {
  DPoP,
  ...insecure,
  [oauth.customFetch]: async (_url, init) => {
    captured = new Headers(init.headers);
    return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } });
  },
});

process.stdout.write(`${JSON.stringify({
  access_token: token.access_token,
  token_type: token.token_type,
  dpop: captured.get('dpop'),
  authorization: captured.get('authorization'),
  method,
  url,
})}\n`);
