# syntax=docker/dockerfile:1
#
# pg-tenant-proxy container image: built in one stage, run from production dependencies only.
#
#   docker build -t pg-tenant-proxy:0.1.0 .
#   docker run --rm -p 6432:6432 -p 9187:9187 \
#     -v "$PWD/config.yaml:/etc/pg-tenant-proxy/config.yaml:ro" \
#     -e PGTP_BACKEND_PASSWORD=... -e PGTP_JWT_SECRET=... \
#     pg-tenant-proxy:0.1.0
#
# In a container the config must set `listen.host: 0.0.0.0` (and `admin.host: 0.0.0.0` for the published admin
# port): both default to 127.0.0.1, which inside the container is unreachable through `-p`. With tokens, set
# `listen.tls` too (tokens are refused over unencrypted connections by default). Example:
#
#   listen: { host: 0.0.0.0, port: 6432, tls: { cert_file: /etc/pg-tenant-proxy/tls/tls.crt, key_file: /etc/pg-tenant-proxy/tls/tls.key } }
#   admin:  { host: 0.0.0.0, port: 9187 }
#   backend: { host: db, database: app, user: app_pool, password: { env: PGTP_BACKEND_PASSWORD } }
#   auth:   { jwt: { algorithms: [HS256], secret: { env: PGTP_JWT_SECRET } } }
#
# Install scripts are skipped (--ignore-scripts): package.json's "allowScripts" is an npm 11 feature that the
# npm 10 bundled with node:20 ignores, and neither the build (tsc) nor the proxy needs any install script.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------
# build: full dependency tree (incl. dev deps: typescript) + tsc -> dist/
# ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---------------------------------------------------------------------------
# deps: production dependencies only (no typescript, tsx, esbuild or embedded-postgres: all dev dependencies)
# ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# ---------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app

# Owned by root, read-only for the "node" user: the process never writes to /app. No src/ here, so the bin
# runs the compiled dist/.
COPY --from=deps  /app/node_modules ./node_modules
COPY --from=build /app/dist         ./dist
COPY package.json ./
COPY bin ./bin
# The tenancy kit's SQL, read at run time by `pg-tenant-proxy kit` (src/admin/kit.ts resolves ../../sql/ from dist/).
COPY sql ./sql

# Default config location; mount a file (or a ConfigMap) here.
RUN mkdir -p /etc/pg-tenant-proxy

USER node

# 6432: PostgreSQL wire protocol (clients); 9187: admin HTTP (/metrics, /healthz, /readyz). These are the config
# defaults; EXPOSE is documentation only.
EXPOSE 6432 9187

# The health check reads admin.host/admin.port from the proxy's own config (the --config of PID 1), so a
# changed admin.port never leaves it probing the wrong port. admin.port: 0 (disabled) counts as healthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "/app/bin/pg-tenant-proxy.js", "healthcheck", "--timeout-ms", "4000"]

# node runs as PID 1 and handles SIGTERM itself (graceful shutdown in src/main.ts).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/bin/pg-tenant-proxy.js"]
CMD ["--config", "/etc/pg-tenant-proxy/config.yaml"]
