// The floor of `cargo xtask bench edge`: a Worker that forwards every request to the origin and does nothing
// else — no validation, no rate limit, no key hashing. What HHS's edge adds beyond this is HHS's own cost.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    return fetch(env.ORIGIN_URL + url.pathname + url.search, {
      method: request.method,
      headers: request.headers,
      body: request.body,
    });
  },
};
