# One image for both servers; docker-compose.yml picks the npm script each runs.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY tsconfig.json schema.graphql ./
COPY proto ./proto
COPY src ./src
USER node
EXPOSE 4000 4001 4002 4003
# The same npm scripts the tests run; compose overrides this for the publish server.
CMD ["npm", "run", "start:subscribe"]
