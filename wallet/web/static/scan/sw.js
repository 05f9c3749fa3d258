// The scanner's service worker. The service puts VERSION and PRECACHE in front of
// this file: a digest of every file of the app, and the URLs to keep for offline use.
// The trust bundle is not kept here but in IndexedDB, and only once verified: a copy
// of whatever the network said would not do.
/* global VERSION, PRECACHE */

const CACHE = `scan-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // Past the HTTP cache: a new version must never store an old file under its name.
      await cache.addAll(PRECACHE.map((url) => new Request(url, { cache: "reload" })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith("scan-") && name !== CACHE) {
          await caches.delete(name);
        }
      }
      await self.clients.claim();
    })(),
  );
});

function cacheKey(request) {
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) {
    return null;
  }
  // The shell is one page whatever the query (?lang=en): the language is chosen in it.
  if (request.mode === "navigate" && url.pathname === "/scan/") {
    return "/scan/";
  }
  return PRECACHE.includes(url.pathname) && url.search === "" ? url.pathname : null;
}

self.addEventListener("fetch", (event) => {
  if (event.request.method !== "GET") {
    return;
  }
  const key = cacheKey(event.request);
  if (key === null) {
    return; // the bundle, the root key and anything else: straight to the network
  }
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const cached = await cache.match(key);
      return cached || fetch(event.request);
    })(),
  );
});
