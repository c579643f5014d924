// A real OpenID Connect provider for the tests (npm oidc-provider): the clients and people of
// the JSON file given as the first argument, on 127.0.0.1 at the port given as the second.
// Sign-in is a one-field form (the account id) at /interaction/{uid}: no password, since the
// tests are about what collab does with the provider's answer. PKCE is required of every client.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const port = Number(process.argv[3]);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: config.clients,
  pkce: { required: () => true },
  // The claims go in the ID token itself, as Entra ID puts a person's name and groups there.
  conformIdTokenClaims: false,
  cookies: { keys: ['collab-tests-cookie-key'] },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username', 'groups', 'tid'],
    email: ['email'],
  },
  features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true } },
  findAccount: async (ctx, id) => {
    const account = config.accounts[id];
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...account }) };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // Consent is the trust's business, not the tests': every client gets the scopes it asks for.
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email');
    await grant.save();
    return grant;
  },
});
provider.on('server_error', (ctx, error) => console.error('server_error', error));

const page = (uid) => `<!doctype html><title>Test trust sign-in</title>
<form method="post" action="/interaction/${uid}/login">
<label>Account <input name="login" autofocus></label>
<button type="submit">Sign in at the trust</button></form>`;

const handle = provider.callback();
const server = http.createServer(async (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  const match = path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return handle(req, res);
  try {
    if (req.method === 'GET') {
      await provider.interactionDetails(req, res);
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end(page(match[1]));
    }
    let body = '';
    for await (const chunk of req) body += chunk;
    const accountId = new URLSearchParams(body).get('login');
    if (!config.accounts[accountId]) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      return res.end('no such account');
    }
    await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
  } catch (error) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(String(error));
  }
});
server.listen(port, '127.0.0.1', () => console.log('ready'));
