# One image for both servers: `node dist/main.js subscribe` by default; docker-compose.yml
# runs `node dist/main.js publish` from the same image. Node itself is PID 1, so SIGTERM
# from `docker stop` reaches Herald (WebSocket 1001, gRPC UNAVAILABLE, exit 0): no npm,
# no shell, no tsx in between. Nothing is written at run time: it runs with a read-only
# root filesystem (compose sets read_only).

# Build: compile src/ to dist/ with the dev dependencies (TypeScript). The servers only:
# the client package (packages/client, an npm workspace) is for apps, not this image.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build:server

# Production dependencies only, apart from the build so none of its tools are shipped.
FROM node:24-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# Files stay root's: the `node` user can read them and change none.
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json schema.graphql ./
COPY proto ./proto
COPY --from=build /app/dist ./dist
USER node
EXPOSE 4000 4001 4002 4003
# /readyz on whichever of SUBSCRIBE_PORT and PUBLISH_PORT this container serves (the slim image has no curl).
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["node", "dist/healthcheck.js"]
CMD ["node", "dist/main.js", "subscribe"]
