# One image for the worker, the gateway and the migration job; the command picks the role:
#   revops migrate | revops worker | revops gateway   (health: revops health [--url URL])
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 REVOPS_LOG_FORMAT=json
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY revops ./revops
COPY audience ./audience
COPY lifecycle ./lifecycle
COPY scoring ./scoring
COPY journeys ./journeys
COPY handoff ./handoff
COPY rules ./rules
COPY contacts ./contacts
COPY accounts ./accounts
COPY analysis ./analysis
COPY models ./models
COPY crm ./crm
COPY store ./store
COPY definitions ./definitions
COPY workflows ./workflows
COPY activities ./activities
COPY starter ./starter
COPY gateway ./gateway
COPY privacy ./privacy
COPY worker.py ./
COPY config ./config
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 revops
USER revops
# 8000: the gateway; 8081: a worker's /healthz and /readyz when REVOPS_WORKER_HEALTH_PORT=8081.
EXPOSE 8000 8081
CMD ["revops", "worker"]
