"""The cluster deployment of the same Definitions (docs/deploy.md): its configuration from the
environment, the service checks, and a local cluster of K Celery workers under the data root."""
