# Gateway image. Debian 12 (glibc 2.36) matches the uWebSockets.js native build we use.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json Makefile ./
COPY services ./services
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production PORT=8080 TCP_PORT=7037 METRICS_PORT=9464 LOOPBACK_EXEMPT=0
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The web client's static files, served at / (read from services/web beside dist at start).
COPY --from=build /app/services/web ./services/web
COPY --from=build /app/package.json ./package.json
USER node
EXPOSE 8080 7037 9464
# SIGTERM drains (DRAIN_SECONDS) then exits 0.
STOPSIGNAL SIGTERM
CMD ["node", "dist/services/gateway/src/main.js"]
