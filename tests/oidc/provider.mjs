// A real OpenID Connect provider for the tests: the certified `oidc-provider` package
// on a free loopback port, with one confidential client that must use PKCE, a few
// accounts with groups, plain login and consent pages of its own (nothing loads from
// the internet), and a control channel (POST /__control, JSON) so a test can make it
// misbehave: re-sign the ID token at the token endpoint, with the provider's own key,
// for another audience, already expired, or with another nonce. The control channel
// also moves the provider's clock, so it keeps the test's (possibly moved) time, and
// changes an account's groups (a role change at the city's IT).
//
// Configuration comes from the environment (OIDC_TEST_CONFIG, JSON), never from the
// command line: it holds the client secret. The first line on stdout is
// "listening <issuer>"; the process ends when stdin closes (its test ended).

import http from 'node:http';
import { randomBytes } from 'node:crypto';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG ?? '{}');
const accounts = config.accounts ?? {};

let offsetMs = 0;
const realNow = Date.now.bind(Date);
Date.now = () => realNow() + offsetMs;

let mode = 'normal'; // normal | wrong_audience | expired | nonce_mismatch
let ended = []; // subjects whose session ended at the provider (RP-initiated logout)

const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: 'test-key-1', alg: 'RS256', use: 'sig' };

const page = (title, body) => `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>${title}</h1>${body}</main></body></html>`;

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: config.redirect_uris,
    post_logout_redirect_uris: config.post_logout_redirect_uris ?? [],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  scopes: ['openid', 'groups', 'profile', 'email'],
  claims: { openid: ['sub'], groups: ['groups'], profile: ['name', 'preferred_username'], email: ['email'] },
  conformIdTokenClaims: false, // groups in the ID token, as Keycloak's group mapper does
  async findAccount(ctx, sub) {
    const account = accounts[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub, groups: account.groups, name: account.name, preferred_username: sub, email: account.email,
        };
      },
    };
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out', `${form}<p>Sign out of the city's account?</p>
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<p>You are signed out.</p>');
      },
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<pre id="error">${escape(JSON.stringify(out))}</pre>`);
  },
});
provider.on('end_session.success', (ctx) => {
  ended.push(ctx.oidc.session?.accountId ?? '?');
});

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function tamper(idToken) {
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  if (mode === 'wrong_audience') {
    claims.aud = 'another-client';
    delete claims.azp;
  } else if (mode === 'expired') {
    claims.iat = now - 2 * 3600;
    claims.exp = now - 3600;
  } else if (mode === 'nonce_mismatch') {
    claims.nonce = 'not-the-nonce-of-this-sign-in';
  }
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: signingJwk.kid })
    .sign(privateKey);
}

async function interaction(ctx, uid, action) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'wrong interaction');
  const { prompt, params, session } = details;
  if (ctx.method === 'GET') {
    ctx.type = 'html';
    if (prompt.name === 'login') {
      ctx.body = page('Sign in to the city', `<form method="post" action="/interaction/${uid}/login">
<label for="login">Username</label> <input id="login" name="login" autocomplete="username">
<label for="password">Password</label> <input id="password" name="password" type="password">
<button type="submit">Sign in</button></form>`);
    } else {
      ctx.body = page('Allow access', `<p>${escape(params.client_id)} asks for: ${escape(params.scope)}</p>
<form method="post" action="/interaction/${uid}/confirm"><button type="submit">Allow</button></form>`);
    }
    return;
  }
  const form = new URLSearchParams(await readBody(ctx.req));
  let result;
  if (action === 'login') {
    const account = accounts[form.get('login')];
    if (!account || account.password !== form.get('password')) {
      ctx.type = 'html';
      ctx.body = page('Sign in to the city', '<p id="error">Wrong username or password.</p>');
      return;
    }
    result = { login: { accountId: form.get('login') } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    result = { consent: { grantId: await grant.save() } };
  }
  const target = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: action !== 'login',
  });
  ctx.status = 303;
  ctx.redirect(target);
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__control') {
    if (ctx.method === 'POST') {
      const body = JSON.parse((await readBody(ctx.req)) || '{}');
      if (body.mode !== undefined) mode = body.mode;
      if (body.offset_ms !== undefined) offsetMs = body.offset_ms;
      if (body.reset_ended) ended = [];
      for (const [sub, groups] of Object.entries(body.groups ?? {})) accounts[sub].groups = groups;
    }
    ctx.body = { mode, now_ms: Date.now(), real_ms: realNow(), ended };
    return;
  }
  const found = ctx.path.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm))?$/);
  if (found) {
    await interaction(ctx, found[1], found[2]);
    return;
  }
  await next();
  if (ctx.path === '/token' && mode !== 'normal' && ctx.body?.id_token) {
    ctx.body = { ...ctx.body, id_token: await tamper(ctx.body.id_token) };
  }
});

server.on('request', provider.callback());
process.stdout.write(`listening ${issuer}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
