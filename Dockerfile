# syntax=docker/dockerfile:1
# The model server image: Node.js 20 and Python 3 (Debian bookworm, slim), mar-tools installed from `npm pack`,
# running as uid 1000. Its entrypoint serves a model directory, KServe's /mnt/models by default
# (model-store/ + config/config.properties), applying KServe's environment (docs/kubernetes.md):
#
#   docker build -t mar-tools:0.1.0 .
#   docker run --rm -p 8080:8080 -v "$PWD/models:/mnt/models:ro" mar-tools:0.1.0
ARG NODE_IMAGE=node:20-bookworm-slim

# --- pack: build the package from this checkout and pack it as a user gets it from the registry
FROM ${NODE_IMAGE} AS pack
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.types.json ./
COPY scripts/build-validator.js scripts/build-bundle.js scripts/
COPY schemas schemas
COPY proto proto
COPY src src
COPY test test
COPY bench bench
COPY bin bin
COPY docs docs
COPY README.md LICENSE CHANGELOG.md ./
RUN npm run build && npm pack --ignore-scripts && mv mar-tools-*.tgz /tmp/mar-tools.tgz

# --- the image
FROM ${NODE_IMAGE}
# python3 runs the Python workers; pip installs a model's requirements (install_py_dep_per_model);
# tini is pid 1: it forwards SIGTERM to the server (which drains) and reaps what workers leave behind
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=pack /tmp/mar-tools.tgz /tmp/mar-tools.tgz
RUN npm install --global --omit=dev --no-audit --no-fund /tmp/mar-tools.tgz \
 && rm /tmp/mar-tools.tgz \
 && npm cache clean --force
# uid 1000 (the base image's `node` user) owns the working directory and the model mount point; group 0 may
# write too, for clusters that run images under an arbitrary uid in group 0
RUN mkdir -p /home/model-server /mnt/models \
 && chown 1000:0 /home/model-server /mnt/models \
 && chmod 775 /home/model-server /mnt/models
ENV HOME=/home/model-server
WORKDIR /home/model-server
USER 1000:1000
# 8080 inference (KServe v1/v2, /predictions), 8081 management, 8082 metrics, 7070/7071 gRPC inference/management
EXPOSE 8080 8081 8082 7070 7071
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 CMD ["model-server-entrypoint", "--healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "model-server-entrypoint"]
