FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends gettext && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir .
COPY . .
# collectstatic needs settings to import; these placeholders are never used at run time.
RUN DATABASE_URL=postgresql://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    SECRET_KEY=build-only-secret-key-not-used-at-runtime-0000 \
    FIELD_ENCRYPTION_KEY=YnVpbGQtb25seS1maWVsZC1rZXktMDAwMDAwMDAwMDA= \
    python manage.py collectstatic --noinput
RUN useradd --system --home /app ecbao && mkdir -p /data && chown ecbao /data
USER ecbao
ENV ECBAO_DATA_DIR=/data
EXPOSE 8000
CMD ["gunicorn", "ecbao.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60"]
