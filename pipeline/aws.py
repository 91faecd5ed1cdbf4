"""boto3 sessions and clients for the ``aws`` target, and the caller's account.

Credentials come from the standard chain (profile, environment, config files); the
region is the config's (``--region``, the environment, else the profile's); with
``endpoint_url`` every client talks to moto's server or LocalStack.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import boto3
import botocore.session
from botocore.exceptions import ProfileNotFound
from botocore.loaders import Loader, create_loader

from pipeline.config import PipelineConfig


def session(config: PipelineConfig) -> boto3.Session:
    """Return a boto3 session for the config's profile and region (:func:`new_session`)."""
    return new_session(config.profile, config.region)


def new_session(profile: str | None = None, region: str | None = None) -> boto3.Session:
    """A new boto3 session for ``profile`` and ``region`` (None: the standard chain's).

    New each time (it resolves the credentials afresh), but every session reads botocore's
    JSON models (endpoints, service definitions) through one loader per process
    (:func:`_data_loader`): a command makes a dozen clients, and a new session's own loader
    would parse those files again for each.
    """
    core = botocore.session.Session()
    core.register_component("data_loader", _data_loader(core.get_config_variable("data_path")))
    made = boto3.Session(botocore_session=core, profile_name=profile, region_name=region)
    paths = core.get_component("data_loader").search_paths
    paths[:] = dict.fromkeys(paths)  # boto3 appends its own data path on every session
    return made


@functools.cache
def _data_loader(data_path: str | None) -> Loader:
    """botocore's loader for ``data_path`` (AWS_DATA_PATH), shared by every session: it keeps
    each file it has parsed, as a session's own loader does for that session."""
    return create_loader(data_path)


def client(config: PipelineConfig, service: str, /, **kwargs: Any) -> Any:
    """Return a boto3 client for ``service``, honouring ``config.endpoint_url``.

    ``kwargs`` go to boto3 (``config=`` is then botocore's Config, not the pipeline's).
    An S3 client's errors name the bucket and key they were about (see
    :func:`name_s3_errors`).
    """
    if config.endpoint_url:
        kwargs.setdefault("endpoint_url", config.endpoint_url)
    made = session(config).client(service, **kwargs)
    if service == "s3":
        name_s3_errors(made)
    return made


def name_s3_errors(s3: Any) -> None:
    """Make the S3 client's errors say which bucket or object they were about.

    S3 answers a HeadObject it refuses with a bare ``403 Forbidden`` (no body), so the
    error alone does not tell which of a run's objects was refused. The call's Bucket
    and Key are remembered when it is made and appended to the error's message
    (``... Forbidden (s3://bucket/key)``) before botocore raises it.
    """

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["s3_about"] = (params.get("Bucket"), params.get("Key"))

    def name(parsed: Any, context: dict[str, Any], **_: Any) -> None:
        error = parsed.get("Error") if isinstance(parsed, dict) else None
        bucket, key = context.get("s3_about", (None, None))
        if not error or not bucket:
            return
        about = f"s3://{bucket}/{key}" if key else f"bucket {bucket}"
        if about not in str(error.get("Message", "")):
            error["Message"] = f"{error.get('Message') or error.get('Code', '')} ({about})"

    s3.meta.events.register("provide-client-params.s3.*", remember)
    s3.meta.events.register("after-call.s3.*", name)


def caller_account(config: PipelineConfig) -> str:
    """The account of the config's credentials (STS GetCallerIdentity, which needs no right)."""
    return client(config, "sts").get_caller_identity()["Account"]


def with_account(config: PipelineConfig) -> PipelineConfig:
    """The config with its ``account_id`` set, so the bucket names are this account's.

    Asks STS once; a config that already names its account is returned as it is. Raises
    ValueError for a profile the AWS config files lack. The aws target completes every
    CLI's config through this (``pipeline.targets.resolve_config``, from ``pipeline.cli``),
    so deploy.py, run_pipeline.py, query.py and create_visualizations.py agree on the names.
    """
    if config.account_id is not None:
        return config
    try:
        account_id = caller_account(config)
    except ProfileNotFound as exc:  # a bad value, as a bad prefix is (config_from: exit 2)
        raise ValueError(f"AWS profile {config.profile!r} is not in the AWS config files") from exc
    return dataclasses.replace(config, account_id=account_id)
