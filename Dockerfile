# Countersign: the API server (`countersign`) and the device agent (`countersign-agent`).
#
#   docker build -t countersign .
#   docker run --rm -p 8080:8080 countersign    # embedded demo: SQLite in /var/lib/countersign
#
# In Kubernetes, deploy it with the Helm chart in charts/countersign: its probes
# call /healthz and /readyz, and Kubernetes ignores the HEALTHCHECK below.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p countersign-api -p countersign-agent \
 && install -D -m 0755 -t /out target/release/countersign target/release/countersign-agent

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric user, so that Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 countersign \
 && useradd --system --uid 10001 --gid countersign --home-dir /var/lib/countersign \
      --create-home --shell /usr/sbin/nologin countersign
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
# Embedded mode keeps its SQLite file, generated keys and mails here (the user's home).
WORKDIR /var/lib/countersign
ENV COUNTERSIGN_LISTEN=0.0.0.0:8080
EXPOSE 8080
# For plain Docker: GET /healthz on the listen port with bash's /dev/tcp, so the
# image needs no HTTP client.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${COUNTERSIGN_LISTEN##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == *' 200 '* ]]"]
ENTRYPOINT ["countersign"]
CMD ["serve"]
