# healthledger: the GraphQL API over mutual TLS on port 8443.
#
# Build:       docker build -t healthledger .
# Initialise:  docker volume create healthledger-network
#              docker run --rm --entrypoint healthledger \
#                -v healthledger-network:/var/lib/healthledger/network \
#                healthledger network init /var/lib/healthledger/network
# Enrol:       docker run --rm --entrypoint healthledger \
#                -v healthledger-network:/var/lib/healthledger/network \
#                healthledger enroll /var/lib/healthledger/network \
#                --org hospital --uid dr-house --role doctor --p12 CHANGE-ME
# Run:         docker run -d --name healthledger -p 127.0.0.1:8443:8443 --stop-timeout 40 \
#                -v healthledger-network:/var/lib/healthledger/network \
#                -v healthledger-ledger:/var/lib/healthledger/ledger healthledger
#
# These commands keep the CA keys in the volume the server mounts; fine for a trial. To keep
# them off the serving container, do as docker-compose.yml does: `network init` and `enroll` in
# an admin volume at /var/lib/healthledger/admin, and copy only what a server needs into the
# network volume (its `init` service), mounted read-only by the server.
# `network init` fills the empty volume (it never overwrites an existing network). The
# server certificate names localhost and 127.0.0.1, so clients reach the API at
# https://127.0.0.1:8443 through the published port. Arguments after the image name are added to
# `healthledger serve`, e.g. `--workers 4`. The stop timeout outlasts the server's 30 s
# graceful shutdown. A bind-mounted directory must belong to UID 10001.

# The web app and GraphiQL (web/dist): built with Node.js in its own stage; only the static files
# move on.
FROM node:20-slim AS web
WORKDIR /build/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY schema.graphql /build/
COPY web/index.html web/graphiql.html web/vite.config.ts web/codegen.ts web/tsconfig.json ./
COPY web/public ./public
COPY web/src ./src
COPY web/graphiql ./graphiql
RUN npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed UID/GID so bind-mounted directories can be chowned to it on the host.
RUN groupadd --system --gid 10001 healthledger \
    && useradd --system --uid 10001 --gid healthledger --no-create-home \
       --home-dir /var/lib/healthledger --shell /usr/sbin/nologin healthledger \
    && mkdir -p /var/lib/healthledger/network /var/lib/healthledger/ledger \
       /var/lib/healthledger/admin \
    && chown -R healthledger:healthledger /var/lib/healthledger

WORKDIR /src

# Dependencies only, read from pyproject.toml: this layer is rebuilt when they change,
# not on every source edit.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY api ./api
COPY authz ./authz
COPY chaincode ./chaincode
COPY checkpoints ./checkpoints
COPY devkit ./devkit
COPY domain ./domain
COPY encryption ./encryption
COPY fhir_export ./fhir_export
COPY ledger_backends ./ledger_backends
COPY proofcheck ./proofcheck
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info
COPY --from=web /build/web/dist /opt/healthledger/web
ENV HEALTHLEDGER_WEB_DIST=/opt/healthledger/web

# Every channel's ledger is the SQLite file in the ledger volume. Set HEALTHLEDGER_LEDGER_URL
# to a postgresql:// or redis:// URL instead, or to "" to let network.toml (and its
# per-channel `ledger` entries) decide.
ENV HEALTHLEDGER_NETWORK=/var/lib/healthledger/network \
    HEALTHLEDGER_LEDGER_URL=sqlite:////var/lib/healthledger/ledger/ledger.db

# A named volume starts with these directories' ownership, so the user below can write.
VOLUME ["/var/lib/healthledger/network", "/var/lib/healthledger/ledger"]

USER 10001:10001
WORKDIR /var/lib/healthledger

EXPOSE 8443

# Plain-HTTP liveness on the container's loopback only (port 8080 is not exposed): the
# API port asks every client for a certificate, which a health probe does not have.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["healthledger", "serve", "--host", "0.0.0.0", "--port", "8443", "--health-port", "8080"]
