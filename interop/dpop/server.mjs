// server.mjs: a real, OpenID-certified OAuth 2.0 server (oidc-provider) on
// loopback that issues DPoP-bound JWT access tokens by client credentials,
// for jwt-authz's interop tests.
//
// Usage: node server.mjs [PORT]   (or PORT=N; 0 or nothing = a free port)
// Prints one JSON line to stdout once it listens:
//   {"ready":true,"issuer":"http://127.0.0.1:N","jwks_uri":"…","token_endpoint":"…",
//    "client_id":"…","client_secret":"…","resource":"…","scope":"…","alg":"ES256"}
// and runs until SIGTERM/SIGINT. Errors go to stderr.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

const RESOURCE = process.env.INTEROP_RESOURCE || 'urn:apigee:target:api';
const SCOPE = 'read:target write:target';
const CLIENT_ID = 'interop-m2m';
const CLIENT_SECRET = randomBytes(24).toString('base64url');
const ALG = 'ES256';

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

// A fresh ES256 signing key per run: nothing is written to disk.
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `interop-${randomBytes(6).toString('hex')}`, alg: ALG, use: 'sig' };

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: ALG, // the only key is 
    }],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator) => {
          if (resourceIndicator !== RESOURCE) {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            scope: SCOPE,
            audience: RESOURCE,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: ALG } },
          };
        },
      },
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({
    ready: true,
    issuer,
    jwks_uri: `${issuer}/jwks`,
    token_endpoint: `${issuer}/token`,
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    resource: RESOURCE,
    scope: SCOPE,
    alg: ALG,
  })}\n`);
});
server.on('error', (err) => {
  process.stderr.write(`server: ${err.message}\n`);
  process.exit(1);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
