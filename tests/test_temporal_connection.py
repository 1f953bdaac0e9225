"""Connection options for local, mTLS and Temporal Cloud (API key) clusters, built from settings.

No cloud is needed: the options the SDK would connect with are checked, certificate files are
really read, and the defaults really connect to the local dev server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from revops.errors import ConfigError
from revops.settings import Settings
from revops.temporal import connect, connect_options
from tests.conftest import ID_SECRET

CERT = b"-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"
CA = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "cert": tmp_path / "client.pem",
        "key": tmp_path / "client.key",
        "ca": tmp_path / "ca.pem",
    }
    for name, data in (("cert", CERT), ("key", KEY), ("ca", CA)):
        files[name].write_bytes(data)
    return files


def test_defaults_are_a_plain_local_connection() -> None:
    options = connect_options(Settings())
    assert options == {"target_host": "127.0.0.1:7233", "namespace": "default"}


async def test_defaults_really_connect_to_the_local_dev_server(env: WorkflowEnvironment) -> None:
    address = env.client.service_client.config.target_host
    client = await connect(Settings(temporal_address=address))
    assert client.namespace == "default"
    assert await client.service_client.check_health()


def test_an_api_key_turns_tls_on_and_is_sent_as_the_credential() -> None:
    settings = Settings(
        temporal_address="revops.a1b2c.tmprl.cloud:7233",
        temporal_namespace="revops.a1b2c",
        temporal_api_key=SecretStr("cloud-key"),
    )
    options = connect_options(settings)
    assert options["api_key"] == "cloud-key"
    assert options["tls"] is True
    assert options["namespace"] == "revops.a1b2c"


def test_mtls_reads_the_certificate_key_and_ca_files(pem_files: dict[str, Path]) -> None:
    settings = Settings(
        temporal_address="temporal.internal:7233",
        temporal_tls_cert=pem_files["cert"],
        temporal_tls_key=pem_files["key"],
        temporal_tls_ca=pem_files["ca"],
        temporal_tls_server_name="frontend.temporal.internal",
    )
    tls = connect_options(settings)["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == CERT
    assert tls.client_private_key == KEY
    assert tls.server_root_ca_cert == CA
    assert tls.domain == "frontend.temporal.internal"
    assert "api_key" not in connect_options(settings)


def test_tls_without_files_uses_the_system_roots() -> None:
    tls = connect_options(Settings(temporal_tls=True))["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert is None and tls.server_root_ca_cert is None


def test_tls_can_be_forced_off_even_with_an_api_key() -> None:
    settings = Settings(temporal_api_key=SecretStr("k"), temporal_tls=False)
    assert connect_options(settings)["tls"] is False


def test_a_certificate_without_its_key_is_refused(pem_files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="go together"):
        connect_options(Settings(temporal_tls_cert=pem_files["cert"]))


def test_a_missing_certificate_file_is_named(tmp_path: Path, pem_files: dict[str, Path]) -> None:
    missing = tmp_path / "nope.pem"
    settings = Settings(temporal_tls_cert=missing, temporal_tls_key=pem_files["key"])
    with pytest.raises(ConfigError, match="REVOPS_TEMPORAL_TLS_CERT: no such file"):
        connect_options(settings)


def test_a_profile_from_the_temporal_config_file_is_the_base(
    tmp_path: Path, pem_files: dict[str, Path]
) -> None:
    config = tmp_path / "temporal.toml"
    config.write_text(
        "[profile.prod]\n"
        'address = "revops.a1b2c.tmprl.cloud:7233"\n'
        'namespace = "revops.a1b2c"\n'
        'api_key = "from-the-file"\n'
        "[profile.mtls]\n"
        'address = "temporal.internal:7233"\n'
        "[profile.mtls.tls]\n"
        f'client_cert_path = "{pem_files["cert"]}"\n'
        f'client_key_path = "{pem_files["key"]}"\n'
    )
    cloud = connect_options(Settings(temporal_profile="prod", temporal_config_file=config))
    assert cloud["target_host"] == "revops.a1b2c.tmprl.cloud:7233"
    assert cloud["namespace"] == "revops.a1b2c"
    assert cloud["api_key"] == "from-the-file"
    assert cloud["tls"] is True

    override = Settings(
        temporal_profile="prod", temporal_config_file=config, temporal_namespace="staging.a1b2c"
    )
    assert connect_options(override)["namespace"] == "staging.a1b2c"  # set settings win

    mtls = connect_options(Settings(temporal_profile="mtls", temporal_config_file=config))["tls"]
    assert isinstance(mtls, TLSConfig)
    assert mtls.client_cert == CERT and mtls.client_private_key == KEY


def test_an_unknown_profile_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "temporal.toml"
    config.write_text('[profile.prod]\naddress = "x:7233"\n')
    with pytest.raises(ConfigError, match="'staging'"):
        connect_options(Settings(temporal_profile="staging", temporal_config_file=config))


def test_printed_settings_hide_every_secret() -> None:
    settings = Settings(
        database_url="postgresql://revops:pg-password@db:5432/revops",
        temporal_api_key=SecretStr("cloud-key"),
        id_secret=SecretStr("id-secret"),
        smtp_password=SecretStr("smtp-password"),
    )
    for printed in (repr(settings), str(settings)):
        for secret in ("pg-password", "cloud-key", "id-secret", "smtp-password"):
            assert secret not in printed
    assert "postgresql://revops:***@db:5432/revops" in repr(settings)


def test_the_cli_refuses_a_broken_tls_setting_with_exit_2(tmp_path: Path) -> None:
    environ = {
        **os.environ,
        "REVOPS_DATA_DIR": str(tmp_path),
        "REVOPS_ID_SECRET": ID_SECRET,
        "REVOPS_TEMPORAL_TLS_CERT": str(tmp_path / "missing.pem"),
        "REVOPS_TEMPORAL_TLS_KEY": str(tmp_path / "missing.key"),
    }
    revops = str(Path(sys.executable).parent / "revops")
    shown = subprocess.run(
        [revops, "contacts", "show", "u-1"], env=environ, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 2
    assert "REVOPS_TEMPORAL_TLS_CERT: no such file" in shown.stderr
