# NetSpectra image for k8s/ (collector, engine and API share it). Not built in CI (no registry):
#   docker build -t registry.example.org/netspectra:0.1.0 .
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY netspectra netspectra
COPY collectors collectors
COPY flows flows
COPY sinks sinks
COPY schemas schemas
COPY api api
COPY stack stack
COPY dashboards dashboards
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
# libpcap for --method pcap; everything else comes as wheels
RUN apt-get update && apt-get install -y --no-install-recommends libpcap0.8 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 netspectra && useradd --uid 10001 --gid 10001 --no-create-home netspectra
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
# read-only root file system: numba's compiled-function cache goes to the writable /tmp volume
ENV NUMBA_CACHE_DIR=/tmp/numba PYTHONUNBUFFERED=1
USER 10001
ENTRYPOINT ["netspectra"]
CMD ["--help"]
