"""Config: defaults, file, IF_ environment overrides, validation with one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.shared.config import Config, ConfigError, config_to_env, load_config


def test_defaults_match_the_reference_port_and_loopback() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert config.http.listen == "127.0.0.1:8080"
    assert config.services.address("schematic") == "127.0.0.1:50051"
    assert config.http.allowed_origins == ("*",)


def test_file_keys_may_use_the_go_factory_spelling(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("http:\n  externalURL: https://factory.example/\n  listen: 0.0.0.0:9000\nstateDir: /srv/if\n")
    config = load_config(path, {})
    assert config.http.external_url == "https://factory.example/"
    assert config.http.listen == "0.0.0.0:9000"
    assert config.state_dir == Path("/srv/if")


@pytest.mark.parametrize("name", ["IF_HTTP_EXTERNALURL", "IF_HTTP_EXTERNAL_URL"])
def test_environment_overrides_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("http:\n  external_url: https://from-file/\n")
    config = load_config(path, {name: "https://from-env/"})
    assert config.http.external_url == "https://from-env/"


def test_environment_values_are_typed() -> None:
    config = load_config(
        None,
        {
            "IF_HTTP_ALLOWEDORIGINS": '["https://a", "https://b"]',
            "IF_GRPC_DEADLINE_SECONDS": "2.5",
            "IF_HTTP_MAX_BODY_BYTES": "2048",
            "IF_LOG_LEVEL": "DEBUG",
            "IF_UNRELATED_THING": "ignored",
        },
    )
    assert config.http.allowed_origins == ("https://a", "https://b")
    assert config.grpc.deadline_seconds == 2.5
    assert config.http.max_body_bytes == 2048
    assert config.log_level == "debug"


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("services:\n  cache: 127.0.0.1:6000\n")
    assert load_config(None, {"IF_CONFIG": str(path)}).services.cache == "127.0.0.1:6000"


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("http:\n  listen: nope\n", {}, "http.listen: expected host:port, got 'nope'"),
        ("http:\n  externalURL: ftp://x/\n", {}, "http.external_url: expected an http:// or https:// URL"),
        ("htp:\n  listen: x\n", {}, "htp: unknown configuration key"),
        ("http:\n  lissten: x\n", {}, "http.lissten: unknown configuration key"),
        ("logLevel: loud\n", {}, "log_level: expected one of debug, info, warning, error, got 'loud'"),
        ("grpc:\n  deadlineSeconds: 0\n", {}, "grpc.deadline_seconds: must be positive"),
        ("grpc:\n  deadlineSeconds: soon\n", {}, "grpc.deadline_seconds: expected a number, got 'soon'"),
        ("- a\n", {}, "top level must be a mapping"),
        ("a: [\n", {}, "not valid YAML"),
        ("", {"IF_SERVICES_SIGNER": "localhost"}, "services.signer: expected host:port, got 'localhost'"),
        ("", {"IF_METRICS_GATEWAY": "x:y"}, "metrics.gateway: expected host:port"),
        ("installer:\n  external: r.example.com\n", {}, "installer.external: needs installer.internal"),
        ("installer:\n  internal:\n    registry: r:5000\n", {}, "installer.internal: registry and repository"),
        (
            "installer:\n  internal: {registry: r:5000, repository: f}\n  external: https://r\n",
            {},
            "installer.external: expected <host>[/<path>], without a scheme",
        ),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, content: str, env: dict[str, str], message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(path, env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*missing.yaml: No such file"):
        load_config(tmp_path / "missing.yaml", {})


def test_empty_metrics_address_disables_the_listener() -> None:
    assert load_config(None, {"IF_METRICS_CACHE": ""}).metrics.address("cache") == ""


def test_overrides_round_trip_through_the_environment() -> None:
    overrides = {
        "state_dir": "/tmp/x",
        "http": {"listen": "127.0.0.1:1", "allowed_origins": ["https://a"]},
        "grpc": {"keepalive_seconds": 3},
    }
    env = config_to_env(overrides)
    assert env["IF_HTTP_LISTEN"] == "127.0.0.1:1"
    config = load_config(None, env)
    assert config.state_dir == Path("/tmp/x")
    assert config.http.allowed_origins == ("https://a",)
    assert config.grpc.keepalive_seconds == 3.0


def test_installer_images_are_embedded_unless_a_registry_is_named() -> None:
    assert load_config(None, {}).installer.embedded
    env = {"IF_INSTALLER_INTERNAL_REGISTRY": "10.0.0.5:5000", "IF_INSTALLER_INTERNAL_REPOSITORY": "factory"}
    installer = load_config(None, env).installer
    assert (installer.embedded, installer.internal.registry, installer.external) == (False, "10.0.0.5:5000", "")
