"""boto3 sessions and clients for the ``aws`` target.

Credentials and region come from the standard chain (profile, environment, config
files); ``endpoint_url`` points every client at moto's server or LocalStack.
"""

from __future__ import annotations

from typing import Any

import boto3

from pipeline.config import PipelineConfig


def session(config: PipelineConfig) -> boto3.Session:
    """Return a boto3 session for the config's profile and region."""
    return boto3.Session(profile_name=config.profile, region_name=config.region)


def client(config: PipelineConfig, service: str, **kwargs: Any) -> Any:
    """Return a boto3 client for ``service``, honouring ``config.endpoint_url``."""
    if config.endpoint_url:
        kwargs.setdefault("endpoint_url", config.endpoint_url)
    return session(config).client(service, **kwargs)
