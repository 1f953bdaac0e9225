# One image for the worker and the gateway; the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 REVOPS_LOG_FORMAT=json
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY revops ./revops
COPY models ./models
COPY workflows ./workflows
COPY activities ./activities
COPY rules ./rules
COPY store ./store
COPY starter ./starter
COPY gateway ./gateway
COPY worker.py ./
COPY config ./config
COPY journeys ./journeys
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 revops
USER revops
CMD ["revops", "worker"]
