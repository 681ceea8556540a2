"""Pure computation package: decoding, detection, tracking, embedding, clustering, screen time.

Nothing in here imports Dagster. Every function takes plain Python/NumPy values and returns them,
so the pipeline can be used and tested without an orchestrator.
"""
