# codethread bot image. Build with local-model support: docker build --build-arg EXTRAS=local .
FROM python:3.11-slim

ARG EXTRAS=""
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap util-linux fontconfig-config \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY engines ./engines
COPY storage ./storage
COPY sandbox ./sandbox
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"

RUN useradd --create-home --uid 1000 codethread && mkdir -p /data /hf-cache \
    && chown codethread /data /hf-cache
USER codethread
ENV CODETHREAD_DB=/data/codethread.db HF_HOME=/hf-cache
# What every snippet can import: a venv in the image, read-only in each run (README, "Packages").
# Another set: --build-arg SANDBOX_PACKAGES='"numpy", "scipy"' (or run `codethread sandbox
# setup` in the container with a [sandbox] table in the config).
ARG SANDBOX_PACKAGES='"numpy", "pandas", "matplotlib"'
RUN printf '[sandbox]\npython_packages = [%s]\n' "$SANDBOX_PACKAGES" > /tmp/sandbox.toml \
    && CODETHREAD_CONFIG=/tmp/sandbox.toml codethread sandbox setup \
    && rm /tmp/sandbox.toml
EXPOSE 8080
HEALTHCHECK --interval=30s --start-period=120s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
CMD ["codethread", "serve", "--port", "8080"]
