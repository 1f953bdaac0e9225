"""Connecting to Temporal with the project's data converter, locally or to a secured cluster.

Every client (worker, gateway relay, CLI, tests) goes through ``connect`` so pydantic models
round-trip the same way everywhere, and every payload is encrypted when
``REVOPS_PAYLOAD_ENCRYPTION`` is on (``revops/codec.py``; workers take the client's
converter). ``connect_options`` turns the settings into the SDK's connect arguments
through the SDK's own environment configuration (``temporalio.envconfig``): a profile from
the Temporal client config file when ``REVOPS_TEMPORAL_PROFILE`` names one, then the
``REVOPS_TEMPORAL_*`` settings that are set. So an API key turns TLS on and certificate
files are read exactly as the ``temporal`` CLI does it, and Temporal Cloud needs no code here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS, ClientConnectConfig
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig, RPCError

from revops.codec import EncryptionCodec, parse_keys
from revops.errors import ConfigError, TemporalUnavailable
from revops.settings import Settings

__all__ = [
    "DATA_CONVERTER",
    "FAIL_FAST",
    "codec_for",
    "connect",
    "connect_options",
    "connection_profile",
    "data_converter",
    "tracing_interceptors",
]

DATA_CONVERTER = pydantic_data_converter
FAIL_FAST = RetryConfig(max_interval_millis=1000, max_elapsed_time_millis=2000, max_retries=4)
"""Client retries for callers that retry themselves (the relay backs off and tries again)."""

_TLS_FIELDS = (
    "temporal_tls",
    "temporal_tls_cert",
    "temporal_tls_key",
    "temporal_tls_ca",
    "temporal_tls_server_name",
)


def _base_profile(settings: Settings) -> ClientConfigProfile:
    """The named profile of the config file (with TEMPORAL_* overrides), else an empty one."""
    if settings.temporal_profile is None:
        return ClientConfigProfile()
    try:
        return ClientConfigProfile.load(
            profile=settings.temporal_profile,
            config_source=settings.temporal_config_file,
            config_file_strict=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise ConfigError(
            f"REVOPS_TEMPORAL_PROFILE={settings.temporal_profile!r}: cannot load it from the "
            f"Temporal config file ({settings.temporal_config_file or 'default path'}): {exc}"
        ) from exc


def _tls(settings: Settings, base: ClientConfigTLS | None) -> ClientConfigTLS | None:
    if not settings.model_fields_set.intersection(_TLS_FIELDS):
        return base
    base = base or ClientConfigTLS()
    if settings.temporal_tls is False:
        return ClientConfigTLS(disabled=True)
    if (settings.temporal_tls_cert is None) != (settings.temporal_tls_key is None):
        raise ConfigError(
            "REVOPS_TEMPORAL_TLS_CERT and REVOPS_TEMPORAL_TLS_KEY go together (mTLS needs both)"
        )
    for name in ("temporal_tls_cert", "temporal_tls_key", "temporal_tls_ca"):
        path: Path | None = getattr(settings, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"REVOPS_{name.upper()}: no such file {str(path)!r}")
    return ClientConfigTLS(
        disabled=False,
        server_name=settings.temporal_tls_server_name or base.server_name,
        server_root_ca_cert=settings.temporal_tls_ca or base.server_root_ca_cert,
        client_cert=settings.temporal_tls_cert or base.client_cert,
        client_private_key=settings.temporal_tls_key or base.client_private_key,
    )


def connection_profile(settings: Settings) -> ClientConfigProfile:
    """The SDK client profile the settings describe (nothing is read from disk yet)."""
    base = _base_profile(settings)
    named = settings.temporal_profile is not None
    chosen = settings.model_fields_set

    def pick(field: str, ours: str | None, theirs: str | None) -> str | None:
        return ours if field in chosen or not named or theirs is None else theirs

    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return ClientConfigProfile(
        address=pick("temporal_address", settings.temporal_address, base.address),
        namespace=pick("temporal_namespace", settings.temporal_namespace, base.namespace),
        api_key=api_key if api_key is not None else base.api_key,
        tls=_tls(settings, base.tls),
        grpc_meta=base.grpc_meta,
    )


def connect_options(settings: Settings) -> ClientConnectConfig:
    """Keyword arguments for ``Client.connect``: address, namespace, API key, TLS.

    Certificate files are read here; a missing or unreadable one is a ConfigError naming it.
    """
    profile = connection_profile(settings)
    try:
        return profile.to_client_connect_config()
    except OSError as exc:
        raise ConfigError(f"cannot read a Temporal TLS file: {exc}") from exc


def codec_for(settings: Settings) -> EncryptionCodec | None:
    """The payload codec the settings ask for (None when encryption is off)."""
    if not settings.payload_encryption:
        return None
    keys = {k: v.get_secret_value() for k, v in settings.payload_keys.items()}
    return EncryptionCodec(parse_keys(keys))


def data_converter(settings: Settings) -> DataConverter:
    """The project's converter, with the payload codec when encryption is on."""
    codec = codec_for(settings)
    if codec is None:
        return DATA_CONVERTER
    return dataclasses.replace(DATA_CONVERTER, payload_codec=codec)


async def connect(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    """A client for the configured frontend; raises TemporalUnavailable when unreachable.

    ``lazy`` is for processes that must run while Temporal is down (the gateway: it accepts
    into the store and its relay retries on its own): connect on first use, and let a call
    fail within a couple of seconds instead of retrying for ten. ``runtime`` carries the
    worker's metrics exporter (``revops.metrics.temporal_runtime``).
    """
    options = connect_options(settings)
    address = options.get("target_host", settings.temporal_address)
    try:
        return await Client.connect(
            **options,
            data_converter=data_converter(settings),
            lazy=lazy,
            retry_config=FAIL_FAST if lazy else None,
            runtime=runtime,
            interceptors=tracing_interceptors(settings),
        )
    except (RuntimeError, RPCError) as exc:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {address}: {exc}. Is `make run` (or `revops dev`) running?"
        ) from exc


def tracing_interceptors(settings: Settings) -> list[Interceptor]:
    """Temporal's OpenTelemetry interceptor when ``REVOPS_OTEL_TRACING`` is on (off by
    default). On a client it traces starts and signals; workers built from that client trace
    workflows and activities too, so one trace follows an event from the relay's
    signal-with-start through the contact workflow to its sends. Spans go to the process's
    tracer provider: configure its exporter the OpenTelemetry way (``OTEL_*`` variables,
    ``opentelemetry-instrument``)."""
    if not settings.otel_tracing:
        return []
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as exc:
        raise ConfigError(
            "REVOPS_OTEL_TRACING needs OpenTelemetry's SDK: pip install 'revops[tracing]'"
        ) from exc
    return [TracingInterceptor()]
