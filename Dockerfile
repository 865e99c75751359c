# SMART on FHIR authorization server. The image runs TypeScript directly through tsx (a runtime
# dependency), so there is no build stage: `npm ci --omit=dev` is all it needs.
FROM node:22-bookworm-slim

# Without AUTHZ_MODE the server runs in production mode under NODE_ENV=production, so an image
# started without configuration refuses to run with development defaults.
ENV NODE_ENV=production
WORKDIR /app

# Dependencies first: this layer is reused while only the source changes.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY . .
# The only place the unprivileged user may write (dataDir defaults to var).
RUN mkdir -p var && chown node:node var

USER node
EXPOSE 3000

# Liveness only (/healthz); readiness with a Redis round trip is /readyz. https when the server
# terminates TLS itself, with certificate checks off because it dials 127.0.0.1, not its name.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const t=require(process.env.AUTHZ_TLS_CERT?'node:https':'node:http');t.get({host:'127.0.0.1',port:process.env.AUTHZ_PORT||process.env.PORT||3000,path:'/healthz',rejectUnauthorized:false,timeout:4000},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]

# node directly (not npm start) so SIGTERM reaches the server and it can drain connections.
CMD ["node", "--import", "tsx", "src/main.ts"]
