// The test bed's OpenID Connect provider: oidc-provider (a certified implementation) over HTTPS, with
// one client (the hub) and people who log in with a password on a plain HTML form.
//
//   node provider.mjs <config.json>
//
// config.json: {issuer, host, port, cert, key, client: {id, secret, redirect_uri},
//               accounts: {username: {password, groups: [...]}}}
import fs from 'node:fs';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts;

const provider = new Provider(config.issuer, {
  clients: [{
    client_id: config.client.id,
    client_secret: config.client.secret,
    redirect_uris: [config.client.redirect_uri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    if (!accounts[id]) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: id, email: `${id}@testbed.test`, groups: accounts[id].groups };
      },
    };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: { devInteractions: { enabled: false } },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => false },
});

function page(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>Test bed identity provider</title><h1>Test bed identity provider</h1>${body}`);
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

function loginForm(res, uid, error) {
  page(res, error ? 401 : 200, `${error ? `<p id="error">${escape(error)}</p>` : ''}
    <form method="post" action="/interaction/${uid}/login">
      <label>Username <input id="idp-username" name="username" autofocus></label>
      <label>Password <input id="idp-password" name="password" type="password"></label>
      <button id="idp-submit" type="submit">Sign in</button>
    </form>`);
}

async function interaction(req, res) {
  const match = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    if (req.method !== 'POST' || !match[2]) return loginForm(res, details.uid);
    const form = await readForm(req);
    const account = accounts[form.username];
    if (!account || account.password !== form.password) {
      return loginForm(res, details.uid, 'Unknown user or wrong password.');
    }
    return provider.interactionFinished(req, res, { login: { accountId: form.username } },
                                        { mergeWithLastSubmission: false });
  }
  // consent: the hub is this provider's only client, and people consent by logging in.
  const grant = details.grantId ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } },
                                      { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const server = https.createServer(
  { cert: fs.readFileSync(config.cert), key: fs.readFileSync(config.key) },
  (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(req, res).catch((error) => page(res, 500, `<p>${escape(error.message)}</p>`));
    } else {
      callback(req, res);
    }
  },
);
server.listen(config.port, config.host, () => console.log(`oidc-provider listening on ${config.issuer}`));
