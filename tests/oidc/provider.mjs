// A machine-to-machine OpenID provider for the tests: panva's oidc-provider (certified), with
// the client-credentials grant and resource indicators (RFC 8707), so that a client asking for
// `resource=<the API>` gets a JWT access token (`typ: at+jwt`) whose audience is that API.
//
//   node provider.mjs <config.json>
//
// config.json: {"port", "issuer", "audience", "scopes": [...], "alg", "jwks": {"keys": [private
// JWKs]}, "clients": [{"client_id", "client_secret", "scope", "auth"}]}. Listens on 127.0.0.1.
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const provider = new Provider(config.issuer, {
  clients: config.clients.map((client) => ({
    client_id: client.client_id,
    client_secret: client.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: client.scope,
    token_endpoint_auth_method: client.auth || 'client_secret_basic',
  })),
  jwks: config.jwks,
  scopes: config.scopes,
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== config.audience) throw new errors.InvalidTarget();
        return {
          scope: config.scopes.join(' '),
          audience: config.audience,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: config.alg } },
        };
      },
    },
  },
});
provider.proxy = false;

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider ${config.issuer} on 127.0.0.1:${config.port}`);
});
