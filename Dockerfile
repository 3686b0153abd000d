# The trialwatch worker image (used by docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY models ./models
COPY producers ./producers
COPY streams ./streams
RUN pip install --no-cache-dir .
# A quick model so the worker can score on first start; replace by mounting
# your own artifacts at /app/artifacts (TRIALWATCH_MODEL_DIR).
RUN trialwatch train --profile quick --out /app/artifacts
RUN useradd --create-home trialwatch && mkdir -p /data && chown trialwatch /data
USER trialwatch
EXPOSE 6066
CMD ["trialwatch", "worker", "-l", "info"]
